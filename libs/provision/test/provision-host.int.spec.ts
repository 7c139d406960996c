// The provisioner's paths for ordinary hosts, run for real on a netns machine made to look like
// one, inside its own mount namespace (nothing of it reaches this box's /etc, /opt, /run):
//   - No Node.js and no working apt-get on the host: the bundle's own runtime runs the agent
//     (node hidden, apt-get replaced by a recorder that must never be called).
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
  provision,
  renderUnit,
  restartAgent,
  stopAgent,
  type KeyPair,
  type ProvisionProgress,
} from "../src";
import { testBridge } from "../../../test/support/leftovers";

const repo = resolve(__dirname, "../../..");
const root = process.getuid?.() === 0;
const haveAgent = existsSync(join(repo, "agent/shim/build/flotilla-shim"));
const nodeBinary = "/usr/bin/node";
const haveHostTools = existsSync(nodeBinary) && existsSync("/usr/bin/apt-get") && existsSync("/usr/bin/systemctl");
const bundledNode = "v20.20.2";

describe.skipIf(!root || !haveAgent || !haveHostTools)("provisioning ordinary hosts: no Node.js needed, the systemd unit", () => {
  const base = mkdtempSync(join(tmpdir(), "flotilla-prov-host-"));
  const bundle = join(base, "flotilla-agent.tar.gz");
  const tag = process.pid.toString(36);
  const name = `ph-${tag}`;
  const factory = getDriver("netns");
  const driver: Driver = factory.bind(
    { machineName: name, storeDir: join(base, "machines", name), runner: createExecRunner(), lockDir: join(base, "locks") },
    factory.parseOptions({ "netns-cidr": "198.19.85.1/24", "netns-bridge": testBridge("flph") }),
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

  const HOST_PATHS = ["/etc/flotilla", "/opt/flotilla", "/run/flotilla", "/etc/systemd/system/flotilla-agent.service"];
  const hostHad = new Map(HOST_PATHS.map((p) => [p, existsSync(p)]));
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
        "# Stand-in for apt-get: records the call (provisioning must never make one).",
        `echo "apt-get $*" >> ${standins}/apt-get.log`,
        "exit 100",
        "",
      ].join("\n"),
    );
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

  it("provisions a host with neither Node.js nor a working apt-get: the bundle brings its runtime", async () => {
    await inMachine(`mount --bind ${standins}/no-node /usr/bin/node && mount --bind ${standins}/apt-get /usr/bin/apt-get`);
    try {
      // As the provisioner looks (sh; bash would still name a non-executable file).
      expect((await sshRun({ host: ip, port: 22, user: "root", privateKey: key }, "sh -c 'command -v node'")).code).not.toBe(0);
      const steps: ProvisionProgress[] = [];
      const result = await provision({ ...(await target()), progress: (p) => steps.push(p) });
      expect(result.nodeVersion).toBe(bundledNode);
      expect(steps.map((s) => s.step)).toContain("runtime");
      expect(result.os.id).toBe("debian");
      expect(await agentHandshake(ip, ca.certPem, client)).toBe(true);
      expect(existsSync(join(dataDir, "standins", "apt-get.log"))).toBe(false);
      // The agent process is the bundle's node (the run script and launcher exec it), not the host's.
      expect(await inMachine("readlink /proc/$(cat /var/lib/flotilla-agent/flotilla/run/agent.pid)/exe")).toBe(
        "/var/lib/flotilla-agent/flotilla/agent/node\n",
      );
    } finally {
      await inMachine("umount /usr/bin/apt-get; umount /usr/bin/node 2>/dev/null; true");
      await stopAgent(await target());
    }
  });

  it("on a systemd host installs, enables and restarts the unit, and restart/stop go through systemctl", async () => {
    // An ordinary host: no netns marker, so the agent goes to /opt, /etc, /run as on a VM.
    rmSync(join(dataDir, ".flotilla-netns-host"));
    const ov = "/var/lib/flotilla-agent/overlays";
    await inMachine(
      ["etc:/etc", "opt:/opt", "run:/run", "log:/var/log"]
        .map((p) => p.split(":"))
        .map(
          ([n, dir]) =>
            `mkdir -p ${ov}/${n}/u ${ov}/${n}/w && mount -t overlay flotilla-test-${n} -o lowerdir=${dir},upperdir=${ov}/${n}/u,workdir=${ov}/${n}/w ${dir}`,
        )
        .join(" && ") + ` && mkdir -p /run/systemd/system && mount --bind ${standins}/systemctl /usr/bin/systemctl`,
    );
    const result = await provision(await target());
    expect(result.service).toBe("systemd");
    expect(result.layout.netns).toBe(false);
    expect(await inMachine("cat /etc/systemd/system/flotilla-agent.service")).toBe(renderUnit(agentLayout(false)));
    expect(await inMachine("stat -c %a /etc/flotilla/server-key.pem /etc/flotilla/agent.env")).toBe("600\n600\n");
    expect(await inMachine("head -n1 /opt/flotilla/agent/VERSION")).toBe(`${result.agentVersion}\n`);
    const calls = () =>
      readFileSync(join(dataDir, "standins", "systemctl.log"), "utf8")
        .split("\n")
        .filter(Boolean);
    expect(calls()).toEqual(["daemon-reload", "enable flotilla-agent.service", "restart flotilla-agent.service"]);
    expect(await agentHandshake(ip, ca.certPem, client)).toBe(true);
    // None of it landed on this box (paths this box already had, e.g. as a machine itself, aside).
    for (const p of HOST_PATHS) expect([p, existsSync(p)]).toEqual([p, hostHad.get(p)]);

    await restartAgent(await target());
    expect(calls().at(-1)).toBe("restart flotilla-agent.service");
    expect(await agentHandshake(ip, ca.certPem, client)).toBe(true);
    await stopAgent(await target());
    expect(calls().at(-1)).toBe("stop flotilla-agent.service");
    expect(await agentHandshake(ip, ca.certPem, client)).not.toBe(true);
  });
});
