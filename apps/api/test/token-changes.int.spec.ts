// Token checks kept past the TTL while Postgres announces every token change: two API replicas'
// TokensServices on one real database, no event stream (it never delivers here), so only the
// token table's trigger and each process's LISTEN session tell them of a revoke. The token table
// is locked to show when a check would wait for a lookup. The clock is real time plus an offset
// the tests move forward, so entries age without the tests sleeping.
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

describe("token checks follow Postgres's announcements of token changes", () => {
  let db: TestDatabase;
  let admin: pg.Client;
  let offset = 0;
  const clock = { now: () => Date.now() + offset };
  const replicas: { prisma: PrismaService; tokens: TokensService }[] = [];

  beforeAll(async () => {
    db = await createTestDatabase();
    const config = loadConfig({
      DATABASE_URL: db.url,
      REDIS_URL: inject("redisUrl"),
      FLOTILLA_CONFIG_DIR: mkdtempSync(join(tmpdir(), "flotilla-tokchg-")),
    });
    const events = { stream: () => NEVER } as unknown as EventsService;
    for (let i = 0; i < 2; i++) {
      const prisma = new PrismaService(config);
      replicas.push({ prisma, tokens: new TokensService(prisma, events, config, clock) });
    }
    admin = new pg.Client({ connectionString: db.url });
    await admin.connect();
  });

  afterAll(async () => {
    for (const r of replicas) {
      await r.tokens.onModuleDestroy();
      await r.prisma.onModuleDestroy();
    }
    await admin?.end();
    await db?.drop();
  });

  /** A token used just now (its check writes no use record), known to both replicas' caches. */
  async function cachedToken(name: string): Promise<string> {
    const secret = newTokenSecret();
    await admin.query(`INSERT INTO "ApiToken" (id, name, role, hash, "lastUsedAt") VALUES (gen_random_uuid(), $1, 'viewer', $2, now())`, [
      name,
      hashToken(secret),
    ]);
    for (const { tokens } of replicas) {
      // The first check starts the feed; the entry it makes predates the feed's session.
      expect((await tokens.verify(secret))?.name).toBe(name);
      await caughtUp(tokens, "the feed to vouch");
      offset += TOKEN_CACHE_TTL_MS + 1;
      // Read during the feed's session: this entry is one the feed vouches for.
      expect((await tokens.verify(secret))?.name).toBe(name);
    }
    return secret;
  }

  /** Whether the feed has applied every change committed before `at`. */
  function vouchesFor(tokens: TokensService, at: number): boolean {
    return (tokens.changes.current()?.seenUpTo ?? -Infinity) > at;
  }

  /** Waits until the feed has applied every change committed until now. */
  async function caughtUp(tokens: TokensService, what = "the feed to catch up"): Promise<void> {
    const now = clock.now();
    await until(what, async () => vouchesFor(tokens, now));
  }

  const waitingOnLock = () => sessionsWaitOnLock(admin);
  const withTableLocked = <T>(fn: () => Promise<T>) => withTokenTableLocked(admin, fn);

  /** Ends the feeds' LISTEN sessions, as a network cut or a Postgres restart would. */
  async function cutFeeds(): Promise<void> {
    const cut = await admin.query(
      `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'flotilla-token-changes'`,
    );
    expect(cut.rowCount).toBe(replicas.length);
    for (const { tokens } of replicas) await until("the feed to notice its session ended", async () => !tokens.changes.current());
  }

  it("answers a check long past the TTL from the cache while the feed vouches: a locked token table holds nothing", async () => {
    const secret = await cachedToken("agent-a");
    offset += 60 * TOKEN_CACHE_TTL_MS;
    await caughtUp(replicas[0].tokens);
    const before = clock.now();
    await withTableLocked(async () => {
      // A lookup would wait for the lock, which this test holds until the check has answered.
      expect((await replicas[0].tokens.verify(secret))?.name).toBe("agent-a");
    });
    // The token was last used over a minute ago (by the clock): the check recorded its use in
    // the background, once the table was free.
    await until("the use to be recorded", async () => {
      const { rows } = await admin.query<{ at: Date }>(`SELECT "lastUsedAt" AS at FROM "ApiToken" WHERE name = 'agent-a'`);
      return rows[0].at.getTime() >= before;
    });
  });

  it("refuses a token deleted by another session (no API, no event) once the feed has caught up with the delete", async () => {
    const secret = await cachedToken("agent-b");
    await admin.query(`DELETE FROM "ApiToken" WHERE name = 'agent-b'`);
    const committed = clock.now();
    for (const { tokens } of replicas) {
      await until("the feed to catch up with the delete", async () => vouchesFor(tokens, committed));
      expect(await tokens.verify(secret)).toBeNull();
    }
  });

  it("keeps an entry when only the token's use record changes, and refuses the token's old role once it changes", async () => {
    const secret = await cachedToken("agent-c");
    await admin.query(`UPDATE "ApiToken" SET "lastUsedAt" = now() WHERE name = 'agent-c'`);
    let committed = clock.now();
    await until("the feed to catch up", async () => vouchesFor(replicas[1].tokens, committed));
    await withTableLocked(async () => {
      expect((await replicas[1].tokens.verify(secret))?.role).toBe("viewer");
      expect(await waitingOnLock()).toBe(false);
    });
    await admin.query(`UPDATE "ApiToken" SET role = 'admin' WHERE name = 'agent-c'`);
    committed = clock.now();
    await until("the feed to catch up", async () => vouchesFor(replicas[1].tokens, committed));
    expect((await replicas[1].tokens.verify(secret))?.role).toBe("admin");
  });

  it("stops vouching when its session is cut: a check past the TTL waits for a lookup", async () => {
    const secret = await cachedToken("agent-d");
    await cutFeeds();
    offset += TOKEN_CACHE_TTL_MS + 1;
    await withTableLocked(async () => {
      let answered = false;
      const answer = replicas[0].tokens.verify(secret).then((t) => ((answered = true), t));
      await until("the lookup to wait on the locked table", waitingOnLock);
      expect(answered).toBe(false);
      await admin.query("COMMIT");
      await admin.query("BEGIN");
      expect((await answer)?.name).toBe("agent-d");
    });
    for (const { tokens } of replicas) await caughtUp(tokens, "the feed to listen again");
  });

  it("misses no delete made while its session was cut: entries read before the new session are looked up again", async () => {
    const secret = await cachedToken("agent-e");
    await cutFeeds();
    // Announced to nobody: no replica is listening.
    await admin.query(`DELETE FROM "ApiToken" WHERE name = 'agent-e'`);
    for (const { tokens } of replicas) {
      await caughtUp(tokens, "the feed to listen again");
      expect(await tokens.verify(secret)).toBeNull();
    }
  });

  it("refuses every token after the table is truncated", async () => {
    const secret = await cachedToken("agent-f");
    await admin.query(`TRUNCATE "ApiToken"`);
    const committed = clock.now();
    await until("the feed to catch up", async () => vouchesFor(replicas[0].tokens, committed));
    expect(await replicas[0].tokens.verify(secret)).toBeNull();
  });
});
