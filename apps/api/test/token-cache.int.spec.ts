// Two API replicas on one database: each caches token checks for TOKEN_CACHE_TTL_MS, so a
// revoked token is refused at once by the replica that revoked it, by every other when the
// revoke's event arrives, and a TTL later at the latest.
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import pg from "pg";
import { startTestApi, type TestApi } from "./support";
import { loadConfig } from "../src/config/config";
import { start, type Running } from "../src/bootstrap";
import { TOKEN_CACHE_TTL_MS } from "../src/tokens/tokens.service";
import { until } from "../../../test/support/until";
import { firstValueFrom, filter } from "rxjs";
import { EventsService } from "../src/events/events.service";

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

  it("another replica refuses a revoked token as soon as the revoke's event reaches it", async () => {
    const created = (await (
      await a.fetch("/api/v1/tokens", { method: "POST", body: JSON.stringify({ name: "evented", role: "viewer" }) })
    ).json()) as { token: string };
    expect((await b.fetch("/api/v1/services", { token: created.token })).status).toBe(200);
    const revoked = firstValueFrom(
      b.running.app
        .get(EventsService)
        .stream()
        .pipe(filter((e) => e.kind === "token" && e.action === "revoke" && e.data.name === "evented")),
    );
    expect((await a.fetch("/api/v1/tokens/evented", { method: "DELETE" })).status).toBe(204);
    await revoked;
    // No wait for B's cached answer to expire: the event made B forget it.
    expect((await b.fetch("/api/v1/services", { token: created.token })).status).toBe(401);
  });

  it("a check slower than the TTL answers no request that arrives a TTL after the revoke", async () => {
    const created = (await (
      await a.fetch("/api/v1/tokens", { method: "POST", body: JSON.stringify({ name: "slow", role: "viewer" }) })
    ).json()) as { token: string };
    const db = new pg.Client({ connectionString: a.db.url });
    await db.connect();
    try {
      // B's next check of the token reads it (still valid), then records its use (lastUsedAt is an
      // hour old) and that write waits 5 s: a statement trigger, which fires before any row is
      // locked, so the revoke below is not held up by it. Every other token was used just now.
      await db.query(`UPDATE "ApiToken" SET "lastUsedAt" = CASE WHEN name = 'slow' THEN now() - interval '1 hour' ELSE now() END`);
      await db.query(
        `CREATE FUNCTION slow_token_write() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_sleep(5); RETURN NULL; END $$`,
      );
      await db.query(`CREATE TRIGGER slow_token_write BEFORE UPDATE ON "ApiToken" FOR EACH STATEMENT EXECUTE FUNCTION slow_token_write()`);
      let firstDone = false;
      const first = b.fetch("/api/v1/services", { token: created.token }).then((r) => ((firstDone = true), r));
      await until("B's check to be writing lastUsedAt", async () => {
        const r = await db.query(`SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND wait_event = 'PgSleep'`);
        return r.rowCount! > 0;
      });
      expect((await a.fetch("/api/v1/tokens/slow", { method: "DELETE" })).status).toBe(204);
      await new Promise((r) => setTimeout(r, TOKEN_CACHE_TTL_MS));
      // The check that read the token before the revoke is still under way...
      expect(firstDone).toBe(false);
      // ...and a request a TTL after the revoke is not given its answer.
      const late = await b.fetch("/api/v1/services", { token: created.token });
      expect(late.status).toBe(401);
      // The first request was checked as of before the revoke: it may pass.
      expect((await first).status).toBe(200);
    } finally {
      await db.query(`DROP TRIGGER IF EXISTS slow_token_write ON "ApiToken"`);
      await db.query(`DROP FUNCTION IF EXISTS slow_token_write()`);
      await db.end();
    }
  });

  it("an unknown token is refused by both, cached or not", async () => {
    for (let i = 0; i < 2; i++) {
      expect((await a.fetch("/api/v1/services", { token: "flt_nope" })).status).toBe(401);
      expect((await b.fetch("/api/v1/services", { token: "flt_nope" })).status).toBe(401);
    }
  });
});
