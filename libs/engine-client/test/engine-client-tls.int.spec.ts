import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createServer, type Server } from "node:https";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CertificateAuthority } from "../../provision/src";
import { EngineClient } from "../src";

// Agents' server certificates name their IP only (as provisioning issues them): the client
// must check the certificate against the URL's host, over mutual TLS.
describe("EngineClient over mutual TLS", () => {
  const dir = mkdtempSync(join(tmpdir(), "flotilla-engine-tls-"));
  let server: Server;
  let port: number;
  let ca: CertificateAuthority;
  const hosts: (string | undefined)[] = [];

  beforeAll(async () => {
    ca = await CertificateAuthority.open(join(dir, "ca"));
    const pair = await ca.issueServer({ commonName: "node1", ips: ["127.0.0.1"] });
    server = createServer({ cert: pair.cert, key: pair.key, ca: ca.certPem, requestCert: true, rejectUnauthorized: true }, (req, res) => {
      hosts.push(req.headers.host);
      res.writeHead(200, { "content-type": "text/plain" }).end("OK");
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    port = (server.address() as { port: number }).port;
  });
  afterAll(async () => {
    await new Promise<void>((r) => server.close(() => r()));
    rmSync(dir, { recursive: true, force: true });
  });

  it("reaches an agent whose certificate names its IP, sending the real host", async () => {
    const client = await ca.issueClient("control-plane");
    const engine = new EngineClient({ url: `https://127.0.0.1:${port}`, tls: { ca: ca.certPem, cert: client.cert, key: client.key } });
    try {
      expect(await engine.ping()).toBe(true);
      expect(hosts.at(-1)).toBe(`127.0.0.1:${port}`);
    } finally {
      engine.close();
    }
  });

  it("refuses an agent whose certificate names another IP", async () => {
    const other = await ca.issueServer({ commonName: "node2", ips: ["198.18.0.9"] });
    const wrong = createServer({ cert: other.cert, key: other.key, ca: ca.certPem, requestCert: true }, (_req, res) => res.end("OK"));
    await new Promise<void>((r) => wrong.listen(0, "127.0.0.1", r));
    const client = await ca.issueClient("control-plane");
    const engine = new EngineClient({
      url: `https://127.0.0.1:${(wrong.address() as { port: number }).port}`,
      tls: { ca: ca.certPem, cert: client.cert, key: client.key },
    });
    try {
      await expect(engine.ping()).rejects.toThrow(/ERR_TLS_CERT_ALTNAME_INVALID|altnames/);
    } finally {
      engine.close();
      await new Promise<void>((r) => wrong.close(() => r()));
    }
  });
});
