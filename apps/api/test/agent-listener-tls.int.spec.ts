// Finding 3 of issue 11: agents reached the API over plain HTTP, so join tokens, agent tokens and
// the ingress table crossed the machines' network in clear. With FLOTILLA_AGENT_API_URL on https,
// the agents' listener speaks TLS with a certificate from the Flotilla CA that agents trust.
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { request } from "node:https";
import { request as httpRequest } from "node:http";
import { createServer, type AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestApi, type TestApi } from "./support";

async function freePort(host: string): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, host, r));
  const { port } = s.address() as AddressInfo;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

function get(url: string, opts: { ca?: string } = {}): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = (url.startsWith("https:") ? request : httpRequest)(url, { ...(opts.ca ? { ca: opts.ca } : {}), timeout: 10_000 }, (res) => {
      let body = "";
      res.on("data", (d) => (body += d));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on("error", reject);
    req.on("timeout", () => req.destroy(new Error("timeout")));
    req.end();
  });
}

describe("the agents' listener over TLS", () => {
  let api: TestApi;
  let port: number;
  const dataDir = mkdtempSync(join(tmpdir(), "flotilla-s11-tls-"));
  const saved = { data: process.env.FLOTILLA_DATA_DIR, url: process.env.FLOTILLA_AGENT_API_URL };

  beforeAll(async () => {
    port = await freePort("127.0.0.2");
    process.env.FLOTILLA_DATA_DIR = dataDir;
    process.env.FLOTILLA_AGENT_API_URL = `https://127.0.0.2:${port}`;
    api = await startTestApi({ FLOTILLA_ROLE: "api", FLOTILLA_AGENT_LISTEN: `127.0.0.2:${port}` });
  });
  afterAll(async () => {
    await api?.stop();
    for (const [k, v] of [
      ["FLOTILLA_DATA_DIR", saved.data],
      ["FLOTILLA_AGENT_API_URL", saved.url],
    ] as const) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
    rmSync(dataDir, { recursive: true, force: true });
  });

  it("answers an agent that trusts the Flotilla CA, with a certificate for its address", async () => {
    const ca = readFileSync(join(dataDir, "certs", "ca.pem"), "utf8");
    let res: { status: number; body: string } | undefined;
    for (let i = 0; i < 100 && !res; i++)
      res = await get(`https://127.0.0.2:${port}/api/v1/health`, { ca }).catch(
        () => new Promise<undefined>((r) => setTimeout(() => r(undefined), 100)),
      );
    expect(res?.status).toBe(200);
  });

  it("refuses plain HTTP and a client that does not trust the CA", async () => {
    await expect(get(`http://127.0.0.2:${port}/api/v1/health`)).rejects.toThrow(/socket hang up|ECONNRESET|EPROTO/);
    await expect(get(`https://127.0.0.2:${port}/api/v1/health`)).rejects.toThrow(/self.signed|unable to verify|certificate/i);
  });
});
