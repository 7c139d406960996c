import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { X509Certificate } from "node:crypto";
import { connect, createServer, type Server } from "node:tls";
import { CertificateAuthority, certificateIps, needsReissue, signedBy } from "../src";

describe("certificates", () => {
  const dir = mkdtempSync(join(tmpdir(), "flotilla-ca-"));
  let ca: CertificateAuthority;
  beforeAll(async () => {
    ca = await CertificateAuthority.open(join(dir, "ca"));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("creates the CA once, with its key readable by the owner only", async () => {
    expect(statSync(join(dir, "ca", "ca-key.pem")).mode & 0o777).toBe(0o600);
    const again = await CertificateAuthority.open(join(dir, "ca"));
    expect(again.certPem).toBe(ca.certPem);
    expect(new X509Certificate(ca.certPem).ca).toBe(true);
  });

  it("opens a CA certificate without its key (a control-plane replica's) as one that verifies but refuses to issue", async () => {
    const replica = join(dir, "replica-certs");
    mkdirSync(replica);
    writeFileSync(join(replica, "ca.pem"), ca.certPem);
    const keyless = await CertificateAuthority.open(replica);
    expect(keyless.certPem).toBe(ca.certPem);
    expect(keyless.canIssue).toBe(false);
    await expect(keyless.issueClient("someone")).rejects.toThrow(/this control-plane replica has the CA certificate without its key/);
    // No new CA was made beside it: trust stays with the one CA.
    expect(existsSync(join(replica, "ca-key.pem"))).toBe(false);
    expect(readFileSync(join(replica, "ca.pem"), "utf8")).toBe(ca.certPem);
  });

  it("issues server certificates with the machine's IPs and name as SANs", async () => {
    const server = await ca.issueServer({ commonName: "devdays", ips: ["198.18.0.3", "127.0.0.1"] });
    const x = new X509Certificate(server.cert);
    expect(x.subjectAltName).toContain("DNS:devdays");
    expect(certificateIps(server.cert)).toEqual(["198.18.0.3", "127.0.0.1"]);
    expect(signedBy(server.cert, ca.certPem)).toBe(true);
    expect(x.ca).toBe(false);
  });

  it("detects when a machine's IP changed, so its certificate is re-issued", async () => {
    const { cert } = await ca.issueServer({ commonName: "devdays", ips: ["198.18.0.3"] });
    expect(needsReissue(cert, ["198.18.0.3"])).toBe(false);
    expect(needsReissue(cert, ["198.18.0.9"])).toBe(true);
    // ...and when it is about to expire.
    expect(needsReissue(cert, ["198.18.0.3"], new Date(Date.now() + 824 * 86_400_000))).toBe(true);
  });

  it("rejects bad input with a clear message", async () => {
    await expect(ca.issueServer({ commonName: "dev days", ips: [] })).rejects.toThrow(/invalid certificate name "dev days"/);
    await expect(ca.issueServer({ commonName: "devdays", ips: ["300.1.1.1"] })).rejects.toThrow(/not an IP address: "300.1.1.1"/);
  });

  describe("mutual TLS with the issued certificates", () => {
    let server: Server;
    let port: number;
    let accepted = 0;
    beforeAll(async () => {
      const pair = await ca.issueServer({ commonName: "node1", ips: ["127.0.0.1"] });
      server = createServer({ cert: pair.cert, key: pair.key, ca: ca.certPem, requestCert: true, rejectUnauthorized: true }, (s) => {
        accepted++;
        s.end("hello\n");
      });
      await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
      port = (server.address() as { port: number }).port;
    });
    afterAll(() => new Promise<void>((r) => server.close(() => r())));

    // With TLS 1.3 the client finishes its handshake before the server checks the client's
    // certificate, so a refusal shows up as an alert or an empty close: report either as text.
    const dial = (opts: { cert?: string; key?: string }) =>
      new Promise<string>((resolve) => {
        const s = connect({ host: "127.0.0.1", port, ca: ca.certPem, ...opts }, () => undefined);
        let data = "";
        s.on("data", (d) => (data += d));
        s.on("end", () => resolve(data));
        s.on("error", (e) => resolve(`error: ${e.message}`));
      });

    it("accepts a client certificate signed by the CA", async () => {
      const client = await ca.issueClient("ctl-admin");
      const before = accepted;
      expect(await dial(client)).toBe("hello\n");
      expect(accepted).toBe(before + 1);
    });

    it("refuses a client without a certificate", async () => {
      const before = accepted;
      expect(await dial({})).not.toContain("hello");
      expect(accepted).toBe(before);
    });

    it("refuses a client certificate from another CA", async () => {
      const other = await CertificateAuthority.open(join(dir, "other"));
      const before = accepted;
      expect(await dial(await other.issueClient("intruder"))).not.toContain("hello");
      expect(accepted).toBe(before);
    });
  });
});
