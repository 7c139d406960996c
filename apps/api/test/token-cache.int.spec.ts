// Two API replicas on one database: each caches token checks for TOKEN_CACHE_TTL_MS, so a
// revoked token is refused at once by the replica that revoked it and, a TTL later, by every other.
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { startTestApi, type TestApi } from "./support";
import { loadConfig } from "../src/config/config";
import { start, type Running } from "../src/bootstrap";
import { TOKEN_CACHE_TTL_MS } from "../src/tokens/tokens.service";

let a: TestApi;
// The second replica: same database and queues; the admin token is the first replica's.
let b: { running: Running; fetch(path: string, init?: { token: string }): Promise<Response> };

describe("token checks across API replicas", () => {
  beforeAll(async () => {
    a = await startTestApi();
    const config = loadConfig({
      DATABASE_URL: a.db.url,
      REDIS_URL: inject("redisUrl"),
      FLOTILLA_PORT: "0",
      FLOTILLA_CONFIG_DIR: a.config.configDir,
      FLOTILLA_QUEUE_PREFIX: a.config.queuePrefix,
      FLOTILLA_LOG_LEVEL: "warn",
    });
    const running = await start(config, { logger: false });
    b = { running, fetch: (path, init) => fetch(running.url! + path, { headers: { authorization: `Bearer ${init?.token ?? a.token}` } }) };
  });

  afterAll(async () => {
    await b?.running.close();
    await a?.stop();
  });

  it("a revoked token stops working on every replica within the cache's TTL", async () => {
    const created = (await (
      await a.fetch("/api/v1/tokens", { method: "POST", body: JSON.stringify({ name: "ci", role: "viewer" }) })
    ).json()) as {
      token: string;
    };
    // Both replicas have checked (and cached) it.
    expect((await a.fetch("/api/v1/services", { token: created.token })).status).toBe(200);
    expect((await b.fetch("/api/v1/services", { token: created.token })).status).toBe(200);
    expect((await a.fetch("/api/v1/tokens/ci", { method: "DELETE" })).status).toBe(204);
    expect((await a.fetch("/api/v1/services", { token: created.token })).status).toBe(401);
    await new Promise((r) => setTimeout(r, TOKEN_CACHE_TTL_MS + 50));
    const refused = await b.fetch("/api/v1/services", { token: created.token });
    expect(refused.status).toBe(401);
    expect(((await refused.json()) as { message: string }).message).toMatch(/unknown or was revoked/);
  });

  it("an unknown token is refused by both, cached or not", async () => {
    for (let i = 0; i < 2; i++) {
      expect((await a.fetch("/api/v1/services", { token: "flt_nope" })).status).toBe(401);
      expect((await b.fetch("/api/v1/services", { token: "flt_nope" })).status).toBe(401);
    }
  });
});
