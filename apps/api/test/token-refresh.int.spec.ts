// A token in steady use never waits for Postgres: past half the cache's TTL a check answers from
// the cache and one lookup replaces the entry. Real Postgres, with the token table locked to
// stand for a database too busy to answer; the service's clock is held, so ages are exact.
// This is the TTL alone, as when Postgres's change feed cannot vouch for entries (its session
// lost): the feed is stopped. token-changes.int covers the feed.
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { NEVER } from "rxjs";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { until } from "../../../test/support/until";
import { createTestDatabase, type TestDatabase } from "../../../test/support/database";
import { hashToken, newTokenSecret } from "../src/auth/tokens";
import { loadConfig } from "../src/config/config";
import { PrismaService } from "../src/database/prisma.service";
import type { EventsService } from "../src/events/events.service";
import { sessionsWaitOnLock, withTokenTableLocked } from "./token-table-lock";
import { TOKEN_CACHE_TTL_MS, TokensService } from "../src/tokens/tokens.service";

describe("token checks refresh ahead of expiry", () => {
  let db: TestDatabase;
  let prisma: PrismaService;
  let admin: pg.Client;
  let now = 1_000_000;
  let tokens: TokensService;
  const secret = newTokenSecret();

  beforeAll(async () => {
    db = await createTestDatabase();
    const config = loadConfig({
      DATABASE_URL: db.url,
      REDIS_URL: inject("redisUrl"),
      FLOTILLA_CONFIG_DIR: mkdtempSync(join(tmpdir(), "flotilla-tok-")),
    });
    prisma = new PrismaService(config);
    // No revokes arrive in this test: the event stream is one that never delivers.
    const events = { stream: () => NEVER } as unknown as EventsService;
    tokens = new TokensService(prisma, events, config, { now: () => now });
    await tokens.changes.stop();
    // Used a moment ago: the check records no use (a write) of its own.
    await prisma.apiToken.create({ data: { name: "steady", role: "viewer", hash: hashToken(secret), lastUsedAt: new Date() } });
    admin = new pg.Client({ connectionString: db.url });
    await admin.connect();
  });

  afterAll(async () => {
    await tokens?.onModuleDestroy();
    await admin?.end();
    await prisma?.onModuleDestroy();
    await db?.drop();
  });

  const waitingOnLock = () => sessionsWaitOnLock(admin);
  const withTableLocked = <T>(fn: () => Promise<T>) => withTokenTableLocked(admin, fn);

  it("answers from the cache past half the TTL while a lookup replaces the entry, so a busy database holds no check", async () => {
    expect((await tokens.verify(secret))?.name).toBe("steady");

    // Past half the TTL: the answer comes from the cache, and a lookup starts (and waits on the lock).
    now += TOKEN_CACHE_TTL_MS / 2 + 100;
    await withTableLocked(async () => {
      expect((await tokens.verify(secret))?.name).toBe("steady");
      await until("the refresh to wait on the locked table", waitingOnLock);
    });
    await until("the refresh to end", async () => tokens.lookupsUnderWay === 0);

    // Past the first lookup's TTL, within the refresh's: no check waits, even on a locked table.
    now += TOKEN_CACHE_TTL_MS / 2 + 100;
    await withTableLocked(async () => {
      let answered = false;
      const answer = tokens.verify(secret).then((t) => ((answered = true), t));
      // The refresh this check starts is blocked by the lock; the check itself is not.
      await until("the next refresh to wait on the locked table", waitingOnLock);
      expect(answered).toBe(true);
      expect((await answer)?.name).toBe("steady");
    });
    await until("the refresh to end", async () => tokens.lookupsUnderWay === 0);
  });

  it("waits for a lookup once the entry is older than the TTL: the TTL still bounds a lost revoke", async () => {
    now += TOKEN_CACHE_TTL_MS + 1;
    await withTableLocked(async () => {
      let answered = false;
      const answer = tokens.verify(secret).then((t) => ((answered = true), t));
      await until("the lookup to wait on the locked table", waitingOnLock);
      expect(answered).toBe(false);
      await admin.query(`DELETE FROM "ApiToken" WHERE name = 'steady'`);
      await admin.query("COMMIT");
      await admin.query("BEGIN");
      // The lookup read after the delete: the token is gone.
      expect(await answer).toBeNull();
    });
  });
});
