// The provisioner's paths for ordinary hosts, run for real on a netns machine made to look like
// one, inside its own mount namespace (nothing of it reaches this box's /etc, /opt, /run):
//   - Node.js missing → installed from the OS packages. apt-get cannot run here (it needs the
//     network), so a stand-in bound over /usr/bin/apt-get records its arguments and "installs"
//     nodejs by uncovering the node binary the test hid. The detection, the OS choice, the exact
//     commands and everything after them are real.
//   - systemd → the unit. There is no systemd on this box, so a stand-in bound over
//     /usr/bin/systemctl records its arguments and runs the unit's ExecStart; /run/systemd/system,
//     /etc, /opt, /run and /var/log are overlays private to the machine.
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createExecRunner, getDriver, sshRun, type Driver } from "@flotilla/drivers";
import {
  agentHandshake,
  agentLayout,
  CertificateAuthority,
  CONTROL_PLANE_CLIENT,
  ensureClientCert,
  nodeInstallCommand,
  provision,
  renderUnit,
  restartAgent,
  stopAgent,
  type KeyPair,
  type ProvisionProgress,
} from "../src";

const repo = resolve(__dirname, "../../..");
const root = process.getuid?.() === 0;
const haveAgent = existsSync(join(repo, "agent/shim/build/flotilla-shim"));
const nodeBinary = "/usr/bin/node";
const haveHostTools = existsSync(nodeBinary) && existsSync("/usr/bin/apt-get") && existsSync("/usr/bin/systemctl");

describe("choosing how to install Node.js", () => {
  it.each([
    [{ id: "debian", idLike: [] }, true],
    [{ id: "ubuntu", idLike: ["debian"] }, true],
    [{ id: "raspbian", idLike: ["debian"] }, true],
    [{ id: "linuxmint", idLike: ["ubuntu"] }, true],
    [{ id: "alpine", idLike: [] }, false],
    [{ id: "fedora", idLike: [] }, false],
  ])("%o → apt-get: %s", (os, apt) => {
    const c = nodeInstallCommand(os);
    if (!apt) return void expect(c).toBeNull();
    expect(c).toEqual({ summary: "apt-get install -y nodejs", script: "export DEBIAN_FRONTEND=noninteractive; apt-get update -qq && apt-get install -y -qq nodejs" });
  });
});

describe.skipIf(!root || !haveAgent || !haveHostTools)("provisioning ordinary hosts: Node.js install and the systemd unit", () => {
  const base = mkdtempSync(join(tmpdir(), "flotilla-prov-host-"));
  const bundle = join(base, "flotilla-agent.tar.gz");
  const tag = process.pid.toString(36);
  const name = `ph-${tag}`;
  const factory = getDriver("netns");
  const driver: Driver = factory.bind(
    { machineName: name, storeDir: join(base, "machines", name), runner: createExecRunner(), lockDir: join(base, "locks") },
    factory.parseOptions({ "netns-cidr": "198.19.85.1/24", "netns-bridge": `flph${tag}`.slice(0, 15) }),
  );
  // The machine's /var/lib/flotilla-agent, seen from this box.
  const dataDir = join(base, "machines", name, "root");
  const standins = "/var/lib/flotilla-agent/standins";
  let ca: CertificateAuthority;
  let client: KeyPair;
  let ip: string;
  let key: Buffer;

  /** Runs a command as root inside the machine (its mount namespace); fails on a non-zero exit. */
  const inMachine = async (command: string): Promise<string> => {
    const r = await sshRun({ host: ip, port: 22, user: "root", privateKey: key }, command);
    if (r.code !== 0) throw new Error(`in ${name}: ${command}: exit ${r.code}: ${r.stderr}`);
    return r.stdout;
  };
  const standin = (file: string, script: string) => writeFileSync(join(dataDir, "standins", file), script, { mode: 0o755 });
  const target = async () => ({ ssh: await driver.getSSH(), machineName: name, ip, ca, client, agentBundle: { path: bundle } });

  beforeAll(async () => {
    execFileSync("node", [join(repo, "scripts/build-agent-bundle.mjs"), "--out", bundle], { stdio: "ignore" });
    ca = await CertificateAuthority.open(join(base, "ca"));
    client = await ensureClientCert(ca, CONTROL_PLANE_CLIENT);
    await driver.create();
    ip = await driver.getIP();
    key = readFileSync((await driver.getSSH()).keyPath);
    mkdirSync(join(dataDir, "standins"), { recursive: true });
    writeFileSync(join(dataDir, "standins", "no-node"), "");
    standin(
      "apt-get",
      [
        "#!/bin/sh",
        "# Stand-in for apt-get: records the call; installing nodejs uncovers the hidden node binary.",
        `echo "DEBIAN_FRONTEND=$DEBIAN_FRONTEND apt-get $*" >> ${standins}/apt-get.log`,
        'case "$*" in *"install"*nodejs*) umount /usr/bin/node ;; esac',
        "",
      ].join("\n"),
    );
    standin("apt-get-broken", ["#!/bin/sh", 'case "$*" in update*) exit 0 ;; esac', 'echo "E: Unable to locate package nodejs" >&2', "exit 100", ""].join("\n"));
    standin("node-16", ["#!/bin/sh", "echo v16.20.2", ""].join("\n"));
    writeFileSync(join(dataDir, "standins", "os-release-alpine"), 'NAME="Alpine Linux"\nID=alpine\nVERSION_ID=3.19.1\nPRETTY_NAME="Alpine Linux v3.19"\n');
    standin(
      "systemctl",
      [
        "#!/bin/sh",
        "# Stand-in for systemctl: records the call; restart/stop run and stop the unit's ExecStart.",
        `echo "$*" >> ${standins}/systemctl.log`,
        "unit=/etc/systemd/system/flotilla-agent.service",
        "pidf=/run/standin-agent.pid",
        'stop() { [ -f $pidf ] || return 0; kill -TERM "$(cat $pidf)" 2>/dev/null; i=0; while kill -0 "$(cat $pidf)" 2>/dev/null && [ $i -lt 50 ]; do sleep 0.1; i=$((i+1)); done; rm -f $pidf; }',
        'case "$1" in',
        "  daemon-reload) [ -f $unit ] ;;",
        '  enable) [ -f "/etc/systemd/system/$2" ] || { echo "Failed to enable unit: Unit file $2 does not exist." >&2; exit 1; } ;;',
        `  restart) stop; setsid nohup $(sed -n 's/^ExecStart=//p' $unit) </dev/null >>${standins}/agent.log 2>&1 & echo $! > $pidf ;;`,
        "  stop) stop ;;",
        '  *) echo "systemctl stand-in: unsupported: $*" >&2; exit 1 ;;',
        "esac",
        "",
      ].join("\n"),
    );
  }, 120_000);

  afterAll(async () => {
    await driver.remove().catch(() => undefined);
    rmSync(base, { recursive: true, force: true });
  });

  it("installs Node.js from the OS packages when node is missing, then provisions as usual", async () => {
    await inMachine(`mount --bind ${standins}/no-node /usr/bin/node && mount --bind ${standins}/apt-get /usr/bin/apt-get`);
    try {
      // As the provisioner looks (sh; bash would still name a non-executable file).
      expect((await sshRun({ host: ip, port: 22, user: "root", privateKey: key }, "sh -c 'command -v node'")).code).not.toBe(0);
      const steps: ProvisionProgress[] = [];
      const result = await provision({ ...(await target()), progress: (p) => steps.push(p) });
      expect(steps.map((s) => s.message)).toContain("installing Node.js from the OS packages (apt-get install -y nodejs)");
      expect(readFileSync(join(dataDir, "standins", "apt-get.log"), "utf8")).toBe(
        "DEBIAN_FRONTEND=noninteractive apt-get update -qq\nDEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs\n",
      );
      expect(result.nodeVersion).toBe(execFileSync(nodeBinary, ["--version"], { encoding: "utf8" }).trim());
      expect(result.os.id).toBe("debian");
      expect(await agentHandshake(ip, ca.certPem, client)).toBe(true);
      // Node present now: a second provisioning installs nothing.
      await provision(await target());
      expect(readFileSync(join(dataDir, "standins", "apt-get.log"), "utf8").split("\n").filter(Boolean)).toHaveLength(2);
    } finally {
      await inMachine("umount /usr/bin/apt-get; umount /usr/bin/node 2>/dev/null; true");
      await stopAgent(await target());
    }
  });

  it("says why when Node.js cannot be had: an OS it cannot install on, a failed install, a Node too old", async () => {
    const fails = async (setup: string, undo: string) => {
      await inMachine(setup);
      try {
        return await provision(await target()).then(
          () => "provisioned",
          (e: Error) => e.message,
        );
      } finally {
        await inMachine(undo);
      }
    };
    expect(await fails(`mount --bind ${standins}/no-node /usr/bin/node && mount --bind ${standins}/os-release-alpine /etc/os-release`, "umount /etc/os-release; umount /usr/bin/node")).toBe(
      `provision ${name}: install node: node is not installed and Alpine Linux v3.19 is not supported for installing it; install Node.js 18+`,
    );
    expect(await fails(`mount --bind ${standins}/no-node /usr/bin/node && mount --bind ${standins}/apt-get-broken /usr/bin/apt-get`, "umount /usr/bin/apt-get; umount /usr/bin/node")).toBe(
      `provision ${name}: install node: E: Unable to locate package nodejs`,
    );
    expect(await fails(`mount --bind ${standins}/node-16 /usr/bin/node`, "umount /usr/bin/node")).toBe(
      `provision ${name}: install node: node v16.20.2 is too old; the agent needs Node.js 18 or newer`,
    );
  });

  it("on a systemd host installs, enables and restarts the unit, and restart/stop go through systemctl", async () => {
    // An ordinary host: no netns marker, so the agent goes to /opt, /etc, /run as on a VM.
    rmSync(join(dataDir, ".flotilla-netns-host"));
    const ov = "/var/lib/flotilla-agent/overlays";
    await inMachine(
      ["etc:/etc", "opt:/opt", "run:/run", "log:/var/log"]
        .map((p) => p.split(":"))
        .map(([n, dir]) => `mkdir -p ${ov}/${n}/u ${ov}/${n}/w && mount -t overlay flotilla-test-${n} -o lowerdir=${dir},upperdir=${ov}/${n}/u,workdir=${ov}/${n}/w ${dir}`)
        .join(" && ") + ` && mkdir -p /run/systemd/system && mount --bind ${standins}/systemctl /usr/bin/systemctl`,
    );
    const result = await provision(await target());
    expect(result.service).toBe("systemd");
    expect(result.layout.netns).toBe(false);
    expect(await inMachine("cat /etc/systemd/system/flotilla-agent.service")).toBe(renderUnit(agentLayout(false)));
    expect(await inMachine("stat -c %a /etc/flotilla/server-key.pem /etc/flotilla/agent.env")).toBe("600\n600\n");
    expect(await inMachine("head -n1 /opt/flotilla/agent/VERSION")).toBe(`${result.agentVersion}\n`);
    const calls = () => readFileSync(join(dataDir, "standins", "systemctl.log"), "utf8").split("\n").filter(Boolean);
    expect(calls()).toEqual(["daemon-reload", "enable flotilla-agent.service", "restart flotilla-agent.service"]);
    expect(await agentHandshake(ip, ca.certPem, client)).toBe(true);
    // None of it landed on this box.
    for (const p of ["/etc/flotilla", "/opt/flotilla", "/run/flotilla", "/etc/systemd/system/flotilla-agent.service"]) expect([p, existsSync(p)]).toEqual([p, false]);

    await restartAgent(await target());
    expect(calls().at(-1)).toBe("restart flotilla-agent.service");
    expect(await agentHandshake(ip, ca.certPem, client)).toBe(true);
    await stopAgent(await target());
    expect(calls().at(-1)).toBe("stop flotilla-agent.service");
    expect(await agentHandshake(ip, ca.certPem, client)).not.toBe(true);
  });
});
