// Provisioning a real VM booted from the Flotilla guest image (qemu, TCG): a guest with no Node.js,
// no apt lists and no systemd, reached as a user other than root (sudo). The bundle's own runtime
// runs the agent, the System V init script starts it, and it comes back by itself after a reboot
// (a stop/start of the VM, and the generic driver's restart: a reboot over SSH through sudo).
// The image carries the bundle's runtime: provisioning links it instead of uploading it, and
// uploads it after all when the guest's copy is not the bundle's.
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createExecRunner, getDriver, sshRun, type Driver } from "@flotilla/drivers";
import {
  agentHandshake,
  CertificateAuthority,
  CONTROL_PLANE_CLIENT,
  ensureClientCert,
  HOST_RUNTIME_ROOT,
  INIT_SCRIPT_PATH,
  prepareBundle,
  provision,
  renderInitScript,
  agentLayout,
  upgradeAgent,
  type KeyPair,
} from "../src";
import { canBootVms, ensureGuestImage } from "../../../test/support/guest-image";
import { testBridge } from "../../../test/support/leftovers";

const repo = resolve(__dirname, "../../..");
const haveAgent = existsSync(join(repo, "agent/shim/build/flotilla-shim"));
const suffix = process.pid.toString(36);

describe.skipIf(!canBootVms() || !haveAgent)("provisioning the Flotilla guest image (real VM, TCG, sudo user)", () => {
  const base = mkdtempSync(join(tmpdir(), "flotilla-prov-vm-"));
  const bundle = join(base, "flotilla-agent.tar.gz");
  const name = `pv-${suffix}`;
  const factory = getDriver("qemu");
  const vm: Driver = factory.bind(
    {
      machineName: name,
      storeDir: join(base, "machines", name),
      runner: createExecRunner(),
      lockDir: join(base, "locks"),
      timing: { stopTimeoutMs: 60_000 },
    },
    factory.parseOptions({
      "qemu-network-cidr": "198.19.87.1/24",
      "qemu-bridge": testBridge("flqp"),
      "qemu-accel": "tcg",
      "qemu-memory": 768,
      "qemu-disk-size": 2048,
      "qemu-ssh-user": "docker",
    }),
  );
  let ca: CertificateAuthority;
  let client: KeyPair;
  let ip: string;

  const inGuest = async (command: string): Promise<string> => {
    const ssh = await vm.getSSH();
    const r = await sshRun(
      { host: ssh.host, port: ssh.port, user: ssh.user, privateKey: readFileSync(ssh.keyPath), timeoutMs: 30_000 },
      command,
      { timeoutMs: 60_000 },
    );
    if (r.code !== 0) throw new Error(`in ${name}: ${command}: exit ${r.code}: ${r.stderr}`);
    return r.stdout;
  };
  const target = async () => ({ ssh: await vm.getSSH(), machineName: name, ip, ca, client, agentBundle: { path: bundle } });

  beforeAll(async () => {
    ensureGuestImage();
    execFileSync("node", [join(repo, "scripts/build-agent-bundle.mjs"), "--out", bundle], { stdio: "ignore" });
    ca = await CertificateAuthority.open(join(base, "ca"));
    client = await ensureClientCert(ca, CONTROL_PLANE_CLIENT);
    await vm.preCreateCheck();
    await vm.create();
    ip = await vm.getIP();
  }, 600_000);

  afterAll(async () => {
    await vm.remove().catch(() => undefined);
    rmSync(base, { recursive: true, force: true });
  });

  it("installs the agent through sudo on a guest without Node.js or systemd; the init script runs it", async () => {
    expect((await inGuest("id -un")).trim()).toBe("docker");
    expect(await inGuest("command -v node || echo none")).toBe("none\n");
    expect(await inGuest("[ -d /run/systemd/system ] && echo systemd || echo sysvinit")).toBe("sysvinit\n");
    const result = await provision(await target());
    expect(result.service).toBe("init.d");
    expect(result.nodeVersion).toBe("v20.20.2");
    expect(result.os.id).toBe("debian");
    expect(await agentHandshake(ip, ca.certPem, client)).toBe(true);
    expect(await inGuest(`sudo cat ${INIT_SCRIPT_PATH}`)).toBe(renderInitScript(agentLayout(false)));
    expect(await inGuest("ls /etc/rc2.d")).toMatch(/S\d\dflotilla-agent/);
    expect(await inGuest(`sudo ${INIT_SCRIPT_PATH} status`)).toBe("flotilla-agent is running\n");
    // The image's runtime, linked: it was not uploaded.
    const runtime = (await prepareBundle(bundle)).runtime!;
    expect(await inGuest("readlink /opt/flotilla/agent/node")).toBe(`${HOST_RUNTIME_ROOT}/${runtime.dirName}/node\n`);
  }, 300_000);

  it("uploads the runtime after all when the guest's copy is not the bundle's", async () => {
    const runtime = (await prepareBundle(bundle)).runtime!;
    const shaFile = `${HOST_RUNTIME_ROOT}/${runtime.dirName}/SHA256`;
    await inGuest(`echo ${"0".repeat(64)} | sudo tee ${shaFile} >/dev/null`);
    try {
      await upgradeAgent(await target());
      expect(await inGuest("[ -L /opt/flotilla/agent/node ] && echo link || sha256sum /opt/flotilla/agent/node | cut -c1-64")).toBe(
        `${runtime.sha256}\n`,
      );
      expect(await agentHandshake(ip, ca.certPem, client)).toBe(true);
    } finally {
      await inGuest(`echo ${runtime.sha256} | sudo tee ${shaFile} >/dev/null`);
    }
    // With the guest's copy matching again, an upgrade links it once more.
    await upgradeAgent(await target());
    expect(await inGuest("readlink /opt/flotilla/agent/node")).toBe(`${HOST_RUNTIME_ROOT}/${runtime.dirName}/node\n`);
    expect(await agentHandshake(ip, ca.certPem, client)).toBe(true);
  }, 300_000);

  it("comes back by itself after the VM is stopped (ACPI) and started", async () => {
    await vm.stop();
    expect(await agentHandshake(ip, ca.certPem, client)).not.toBe(true);
    await vm.start();
    await expect.poll(() => agentHandshake(ip, ca.certPem, client), { timeout: 120_000, interval: 1000 }).toBe(true);
  }, 300_000);

  it("the generic driver's restart reboots the guest over SSH (sudo) and waits for it; the agent comes back", async () => {
    const ssh = await vm.getSSH();
    const generic = getDriver("generic");
    const host = generic.bind(
      {
        machineName: `${name}-generic`,
        storeDir: join(base, "machines", `${name}-generic`),
        runner: createExecRunner(),
        timing: { pollIntervalMs: 500, sshTimeoutMs: 30_000 },
      },
      generic.parseOptions({ "generic-ip-address": ip, "generic-ssh-user": ssh.user, "generic-ssh-key": ssh.keyPath }),
    );
    await host.create();
    const bootId = (await inGuest("cat /proc/sys/kernel/random/boot_id")).trim();
    await host.restart();
    expect((await inGuest("cat /proc/sys/kernel/random/boot_id")).trim()).not.toBe(bootId);
    await expect.poll(() => agentHandshake(ip, ca.certPem, client), { timeout: 120_000, interval: 1000 }).toBe(true);
    await host.remove();
  }, 300_000);
});
