// Finding 4 of issue 11: one client certificate was copied into every machine's directory and
// agents accepted any certificate the CA signed, so a certificate handed out for one machine
// opened every machine, and nothing could be revoked before it expired. Now each machine has its
// own client certificate and its agent accepts only that one and the control plane's (an allow
// list it re-reads): another machine's certificate, a rotated one and a removed one are refused.
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { request } from "node:https";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createExecRunner, getDriver, type Driver } from "@flotilla/drivers";
import {
  CertificateAuthority,
  certificateFingerprint,
  clientAllowList,
  CONTROL_PLANE_CLIENT,
  ensureClientCert,
  ensureMachineClientCert,
  provision,
  regenerateCerts,
  writeClientAllowList,
  type KeyPair,
} from "../src";
import { freeSubnet24 } from "../../../test/support/free-subnet";
import { testBridge } from "../../../test/support/leftovers";

const repo = resolve(__dirname, "../../..");
const root = process.getuid?.() === 0;
const haveAgent = existsSync(join(repo, "agent/shim/build/flotilla-shim")) && existsSync(join(repo, "agent/src/main.ts"));

/** `GET /_ping` over mutual TLS with `client`: the status and body, or the connection error. */
function ping(ip: string, ca: string, client: KeyPair): Promise<{ status: number; body: string } | { error: string }> {
  return new Promise((done) => {
    const req = request(
      { host: ip, port: 2376, path: "/_ping", ca, cert: client.cert, key: client.key, agent: false, timeout: 10_000 },
      (res) => {
        let body = "";
        res.on("data", (b: Buffer) => (body += b.toString("utf8")));
        res.on("end", () => done({ status: res.statusCode ?? 0, body }));
      },
    );
    req.on("error", (e) => done({ error: e.message }));
    req.on("timeout", () => req.destroy(new Error("timed out")));
    req.end();
  });
}

describe.skipIf(!root || !haveAgent)("per-machine client certificates (netns host, real agent)", () => {
  const base = mkdtempSync(join(tmpdir(), "flotilla-s11-clients-"));
  const bundle = join(base, "flotilla-agent.tar.gz");
  const name = `cc-${process.pid.toString(36)}`;
  const factory = getDriver("netns");
  const driver: Driver = factory.bind(
    { machineName: name, storeDir: join(base, "machines", name), runner: createExecRunner(), lockDir: join(base, "locks") },
    factory.parseOptions({
      "netns-cidr": `${root ? freeSubnet24([79, 179, 209]).gateway : "198.19.79.1"}/24`,
      "netns-bridge": testBridge("flcc"),
    }),
  );
  let ca: CertificateAuthority;
  let controlPlane: KeyPair;
  let ip: string;
  const userDir = (m: string) => join(base, "user", "machines", m);
  const target = async (allowed: readonly string[]) => ({
    ssh: await driver.getSSH(),
    machineName: name,
    ip,
    ca,
    client: controlPlane,
    allowedClients: allowed,
  });

  beforeAll(async () => {
    execFileSync("node", [join(repo, "scripts/build-agent-bundle.mjs"), "--out", bundle], { stdio: "ignore" });
    ca = await CertificateAuthority.open(join(base, "ca"));
    controlPlane = await ensureClientCert(ca, CONTROL_PLANE_CLIENT);
    await driver.create();
    ip = await driver.getIP();
  }, 120_000);

  afterAll(async () => {
    await driver.remove().catch(() => undefined);
    rmSync(base, { recursive: true, force: true });
  });

  it("accepts its own machine's certificate and the control plane's; another machine's is refused", async () => {
    const own = (await ensureMachineClientCert(ca, userDir(name), name)).pair;
    expect(statSync(join(userDir(name), "key.pem")).mode & 0o777).toBe(0o600);
    await provision({ ...(await target(clientAllowList([own.cert]))), agentBundle: { path: bundle } });

    expect(await ping(ip, ca.certPem, own)).toEqual({ status: 200, body: "OK" });
    expect(await ping(ip, ca.certPem, controlPlane)).toEqual({ status: 200, body: "OK" });

    // Signed by the same CA, for another machine: it used to open this one too.
    const other = (await ensureMachineClientCert(ca, userDir("other-machine"), "other-machine")).pair;
    const refused = await ping(ip, ca.certPem, other);
    expect(refused).toMatchObject({ status: 403 });
    expect(JSON.parse((refused as { body: string }).body).message).toBe(
      `client certificate "other-machine" (SHA256 ${new (await import("node:crypto")).X509Certificate(other.cert).fingerprint256}) is not accepted by this machine: it was revoked, rotated, or issued for another machine`,
    );
    // A machine named like the control plane does not get its access: machine certificates carry OU=machine.
    const lookalike = (await ensureMachineClientCert(ca, userDir(CONTROL_PLANE_CLIENT), CONTROL_PLANE_CLIENT)).pair;
    expect(await ping(ip, ca.certPem, lookalike)).toMatchObject({ status: 403 });
  });

  it("after rotation (regenerate-certs --client-certs) the old certificate is refused by its own machine", async () => {
    const old = { cert: readFileSync(join(userDir(name), "cert.pem"), "utf8"), key: readFileSync(join(userDir(name), "key.pem"), "utf8") };
    const rotated = await ensureMachineClientCert(ca, userDir(name), name, { rotate: true });
    expect(rotated.issued).toBe(true);
    expect(certificateFingerprint(rotated.pair.cert)).not.toBe(certificateFingerprint(old.cert));
    await regenerateCerts({ ...(await target(clientAllowList([rotated.pair.cert]))), engine: {} });

    expect(await ping(ip, ca.certPem, old)).toMatchObject({ status: 403 });
    expect(await ping(ip, ca.certPem, rotated.pair)).toEqual({ status: 200, body: "OK" });
    expect(await ping(ip, ca.certPem, controlPlane)).toEqual({ status: 200, body: "OK" });
  });

  it("on machine rm of a host that stays, its certificate is revoked and the control plane keeps access", async () => {
    const current = {
      cert: readFileSync(join(userDir(name), "cert.pem"), "utf8"),
      key: readFileSync(join(userDir(name), "key.pem"), "utf8"),
    };
    await writeClientAllowList(await target(clientAllowList([])));
    expect(await ping(ip, ca.certPem, current)).toMatchObject({ status: 403 });
    expect(await ping(ip, ca.certPem, controlPlane)).toEqual({ status: 200, body: "OK" });
  });
});
