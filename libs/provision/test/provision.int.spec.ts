// The provisioner against a real host: a netns machine with its own sshd, the real agent bundle
// (scripts/build-agent-bundle.mjs), the supervisor loop, and mutual TLS on port 2376.
import { execFileSync } from "node:child_process";
import { existsSync, lstatSync, mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createExecRunner, getDriver, sshRun, type Driver } from "@flotilla/drivers";
import { readFileSync } from "node:fs";
import {
  agentHandshake,
  CertificateAuthority,
  CONTROL_PLANE_CLIENT,
  ensureClientCert,
  parseOsRelease,
  provision,
  regenerateCerts,
  renderRunScript,
  agentLayout,
  restartAgent,
  stopAgent,
  ensureMachineClientCert,
  type KeyPair,
  type ProvisionProgress,
} from "../src";
import { testBridge } from "../../../test/support/leftovers";

const repo = resolve(__dirname, "../../..");
const root = process.getuid?.() === 0;
const haveAgent = existsSync(join(repo, "agent/shim/build/flotilla-shim")) && existsSync(join(repo, "agent/src/main.ts"));

describe("provision helpers", () => {
  it("parses os-release", () => {
    const os = parseOsRelease('PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\nVERSION_ID="12"\n');
    expect(os).toEqual({ id: "debian", idLike: [], versionId: "12", pretty: "Debian GNU/Linux 12 (bookworm)" });
  });
  it("keeps the agent's flags in one run script", () => {
    const s = renderRunScript(agentLayout(true), { insecureRegistries: ["198.18.0.1:5000"] });
    expect(s).toContain("--tls-listen 0.0.0.0:2376");
    expect(s).toContain("--insecure-registry '198.18.0.1:5000'");
    expect(s).toContain("--socket '/var/lib/flotilla-agent/flotilla/run/agent.sock'");
  });
});

describe.skipIf(!root || !haveAgent)("provision over SSH (netns host, real agent)", () => {
  const base = mkdtempSync(join(tmpdir(), "flotilla-prov-"));
  const bundle = join(base, "flotilla-agent.tar.gz");
  const name = `pv-${process.pid.toString(36)}`;
  const factory = getDriver("netns");
  const driver: Driver = factory.bind(
    { machineName: name, storeDir: join(base, "machines", name), runner: createExecRunner(), lockDir: join(base, "locks") },
    factory.parseOptions({ "netns-cidr": "198.19.78.1/24", "netns-bridge": testBridge("flpv") }),
  );
  let ca: CertificateAuthority;
  let client: KeyPair;
  let ip: string;

  beforeAll(async () => {
    execFileSync("node", [join(repo, "scripts/build-agent-bundle.mjs"), "--out", bundle], { stdio: "ignore" });
    ca = await CertificateAuthority.open(join(base, "ca"));
    client = await ensureClientCert(ca, CONTROL_PLANE_CLIENT);
    await driver.create();
    ip = await driver.getIP();
  }, 120_000);

  afterAll(async () => {
    await driver.remove().catch(() => undefined);
    rmSync(base, { recursive: true, force: true });
  });

  it("names the step and the cause when something is missing", async () => {
    await expect(
      provision({ ssh: await driver.getSSH(), machineName: name, ip, ca, client, agentBundle: { path: join(base, "nope.tgz") } }),
    ).rejects.toThrow(`provision ${name}: upload agent: agent bundle ${join(base, "nope.tgz")} is missing`);
    const wrongKey = join(base, "wrong-key");
    execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", wrongKey]);
    await expect(
      provision({
        ssh: { ...(await driver.getSSH()), keyPath: wrongKey },
        machineName: name,
        ip,
        ca,
        client,
        agentBundle: { path: bundle },
      }),
    ).rejects.toThrow(`provision ${name}: ssh: ssh ${ip}:22: authentication failed for root`);
  });

  it("installs the agent, which answers mutual TLS; re-issues certs; restarts; stops", async () => {
    const steps: ProvisionProgress[] = [];
    const result = await provision({
      ssh: await driver.getSSH(),
      machineName: name,
      ip,
      ca,
      client,
      agentBundle: { path: bundle },
      engine: { insecureRegistries: ["198.19.78.1:5000"] },
      progress: (p) => steps.push(p),
    });
    expect(result.service).toBe("supervisor");
    expect(result.layout.netns).toBe(true);
    expect(steps.map((s) => s.step)).toEqual(
      expect.arrayContaining([
        "ssh",
        "detect os",
        "upload agent",
        "runtime",
        "certificates",
        "service",
        "start agent",
        "wait for agent",
        "ready",
      ]),
    );
    expect(steps.at(-1)!.percent).toBe(100);
    expect(await agentHandshake(ip, ca.certPem, client)).toBe(true);
    // Without a client certificate the agent refuses.
    const other = await (await CertificateAuthority.open(join(base, "other-ca"))).issueClient("intruder");
    expect(await agentHandshake(ip, ca.certPem, other)).not.toBe(true);

    // The files landed in the machine's own data dir, the key 0600.
    const dataDir = join(base, "machines", name, "root");
    expect(statSync(join(dataDir, "flotilla/etc/server-key.pem")).mode & 0o777).toBe(0o600);
    expect(existsSync("/var/lib/flotilla-agent/flotilla")).toBe(false);
    // No runtime of the bundle's on this host (only the Flotilla guest image has one): uploaded.
    expect(lstatSync(join(dataDir, "flotilla/agent/node")).isFile()).toBe(true);

    // Same IP: nothing to re-issue; forced: re-issued and the agent restarted.
    expect(await regenerateCerts({ ssh: await driver.getSSH(), machineName: name, ip, ca, client })).toBe(false);
    const before = readFileSync(join(dataDir, "flotilla/etc/server.pem"), "utf8");
    expect(await regenerateCerts({ ssh: await driver.getSSH(), machineName: name, ip, ca, client, force: true })).toBe(true);
    expect(readFileSync(join(dataDir, "flotilla/etc/server.pem"), "utf8")).not.toBe(before);
    expect(await agentHandshake(ip, ca.certPem, client)).toBe(true);

    // The supervisor restarts a killed agent.
    const ep = await driver.getSSH();
    const key = readFileSync(ep.keyPath);
    await sshRun({ host: ip, port: 22, user: "root", privateKey: key }, "kill -KILL $(cat /var/lib/flotilla-agent/flotilla/run/agent.pid)");
    await new Promise((r) => setTimeout(r, 300));
    await restartAgent({ ssh: ep, machineName: name, ip, ca, client });
    expect(await agentHandshake(ip, ca.certPem, client)).toBe(true);

    await stopAgent({ ssh: ep, machineName: name });
    expect(await agentHandshake(ip, ca.certPem, client)).not.toBe(true);
  });

  it("writes the user's cert dir for DOCKER_CERT_PATH", async () => {
    const dir = join(base, "user", "machines", name);
    await ensureMachineClientCert(ca, dir, name);
    expect(statSync(join(dir, "key.pem")).mode & 0o777).toBe(0o600);
    expect(readFileSync(join(dir, "ca.pem"), "utf8")).toBe(ca.certPem);
  });
});
