import { Inject, Injectable, Logger, OnModuleDestroy } from "@nestjs/common";
import type { Subscription } from "rxjs";
import { CLOCK } from "../common/clock";
import type { Clock } from "@flotilla/core";
import { cachedTokenCheck, ConflictError, NotFoundError } from "@flotilla/core";
import { chmodSync, mkdirSync, writeFileSync, renameSync } from "node:fs";
import { join } from "node:path";
import { APP_CONFIG, type AppConfig } from "../config/config";
import { PrismaService } from "../database/prisma.service";
import { EventsService } from "../events/events.service";
import { hashToken, newTokenSecret } from "../auth/tokens";
import { Batcher } from "../common/batcher";
import { TokenChangeFeed } from "./token-changes";

type TokenRow = { id: string; name: string; hash: string; role: string; createdAt: Date; lastUsedAt: Date | null };

export interface TokenView {
  id: string;
  name: string;
  role: string;
  createdAt: string;
  lastUsedAt: string | null;
}

// Writing lastUsedAt on every request would turn each read into a write; once a minute is plenty.
const LAST_USED_RESOLUTION_MS = 60_000;
// Every request checks its token, and a revoked token must stop working on every replica within
// a second (each API process caches for itself). A cached check is kept for TOKEN_CACHE_TTL_MS,
// or, while this process follows the token table's changes (TokenChangeFeed: Postgres announces
// every revoke to every replica, and proves it is caught up), for WATCHED_TOKEN_MS: agents beat
// seconds apart, each with its own token, so with the TTL alone every beat was a lookup.
export const TOKEN_CACHE_TTL_MS = 1_000;
export const WATCHED_TOKEN_MS = 5 * 60_000;
const TOKEN_CACHE_MAX = 10_000;

@Injectable()
export class TokensService implements OnModuleDestroy {
  private readonly logger = new Logger("tokens");
  /** By token hash: what the database said and when (unknown tokens too, so a flood of bad ones is cheap). */
  private readonly cache = new Map<string, { at: number; token: TokenView | null }>();
  /** Lookups under way, by token hash, with when each started. */
  private readonly lookups = new Map<string, { at: number; answer: Promise<TokenView | null> }>();
  private revocations = 0;
  // Lookups and use records go to Postgres in batches: every agent beats with a token of its own,
  // seconds apart (longer than a check is kept), so 5,000 nodes make hundreds of lookups a second,
  // which as single statements queue in the pool behind the heartbeats' own writes.
  private readonly reads = new Batcher<string, TokenRow | null>(
    async (hashes) => {
      const rows = await this.prisma.apiToken.findMany({ where: { hash: { in: [...new Set(hashes)] } } });
      const byHash = new Map(rows.map((r) => [r.hash, r]));
      return hashes.map((h) => byHash.get(h) ?? null);
    },
    { maxInFlight: 2, maxBatch: 500 },
  );
  private readonly uses = new Batcher<string, void>(
    async (ids) => {
      await this.prisma.apiToken.updateMany({ where: { id: { in: [...new Set(ids)] } }, data: { lastUsedAt: new Date(this.clock.now()) } });
      return ids.map(() => undefined);
    },
    { maxInFlight: 1, maxBatch: 1000 },
  );
  /** Revokes made on other replicas, from the event stream: subscribed at the first check. */
  private revokes?: Subscription;
  /** The token table's changes, from Postgres itself: followed from the first check on. */
  readonly changes: TokenChangeFeed;

  constructor(
    private readonly prisma: PrismaService,
    private readonly events: EventsService,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    @Inject(CLOCK) private readonly clock: Clock,
  ) {
    this.changes = new TokenChangeFeed(
      () => prisma.newSession("flotilla-token-changes"),
      clock,
      (hash) => this.forgetHash(hash),
    );
  }

  /** The token's view if it exists and is not revoked (as of at most TOKEN_CACHE_TTL_MS ago). */
  async verify(secret: string): Promise<TokenView | null> {
    this.revokes ??= this.events.stream().subscribe((e) => {
      if (e.kind === "token" && e.action === "revoke") this.forget(String(e.data.name));
    });
    this.changes.start();
    const hash = hashToken(secret);
    const now = this.clock.now();
    const hit = this.cache.get(hash);
    const use =
      hit &&
      cachedTokenCheck({
        now,
        checkedAt: hit.at,
        found: hit.token !== null,
        ttlMs: TOKEN_CACHE_TTL_MS,
        watchedMs: WATCHED_TOKEN_MS,
        feed: this.changes.current(),
      });
    if (hit && use !== "look-up") {
      // Past half its life the entry still answers while one lookup replaces it: a token in
      // steady use (agents, ctl polling, the console) never waits for Postgres, which under load
      // takes hundreds of milliseconds. A lookup also records the token's use, once a minute.
      const refresh = use === "use-and-refresh" || (hit.token !== null && usedLongAgo(hit.token, now));
      if (refresh && !this.lookups.has(hash)) this.startLookup(hash, now).catch(() => undefined);
      return hit.token;
    }
    // When the entry expires, every request then in flight with this token would look it up:
    // they share one lookup instead, while it is younger than the TTL. Its answer is as of when
    // it started: a slow one (a busy database) must not answer requests that arrive a TTL after
    // a revoke it may predate, or the TTL would not bound how long a revoked token works.
    const pending = this.lookups.get(hash);
    if (pending && now - pending.at < TOKEN_CACHE_TTL_MS) return pending.answer;
    return this.startLookup(hash, now);
  }

  /** How many lookups are under way (for tests). */
  get lookupsUnderWay(): number {
    return this.lookups.size;
  }

  /** One lookup of the token, shared by the requests that arrive while it is young, cached as of `now`. */
  private startLookup(hash: string, now: number): Promise<TokenView | null> {
    const revocations = this.revocations;
    const started = {
      at: now,
      answer: this.lookup(hash).then((token) => {
        // A revoke on this replica meanwhile: the answer may predate it, so it is not kept.
        if (revocations !== this.revocations) return token;
        // Nor over the answer of a lookup that started later.
        if ((this.cache.get(hash)?.at ?? -Infinity) > now) return token;
        if (this.cache.size >= TOKEN_CACHE_MAX) this.cache.clear();
        this.cache.set(hash, { at: now, token });
        return token;
      }),
    };
    const forget = () => {
      if (this.lookups.get(hash) === started) this.lookups.delete(hash);
    };
    started.answer.then(forget, forget);
    this.lookups.set(hash, started);
    return started.answer;
  }

  private async lookup(hash: string): Promise<TokenView | null> {
    const row = await this.reads.call(hash);
    if (!row) return null;
    const now = this.clock.now();
    if (!row.lastUsedAt || now - row.lastUsedAt.getTime() > LAST_USED_RESOLUTION_MS) {
      // Kept as written, so the cached entry does not ask for the write again.
      if (
        await this.uses.call(row.id).then(
          () => true,
          () => false,
        )
      )
        return view({ ...row, lastUsedAt: new Date(now) });
    }
    return view(row);
  }

  /** Creates a token; the secret is returned once and never stored. */
  async create(name: string, role: "admin" | "operator" | "viewer" = "admin"): Promise<TokenView & { token: string }> {
    const secret = newTokenSecret();
    const row = await this.prisma.$transaction(async (tx) => {
      if (await tx.apiToken.findUnique({ where: { name } }))
        throw new ConflictError(`a token named "${name}" already exists`, { field: "name" });
      const created = await tx.apiToken.create({ data: { name, role, hash: hashToken(secret) } });
      const evs = await this.events.record(tx, [{ kind: "token", subjectId: created.id, action: "create", data: { name, role } }]);
      return { created, evs };
    });
    await this.events.publish(row.evs);
    return { ...view(row.created), token: secret };
  }

  async list(): Promise<TokenView[]> {
    return (await this.prisma.apiToken.findMany({ orderBy: { createdAt: "asc" } })).map(view);
  }

  async revoke(name: string): Promise<void> {
    const evs = await this.prisma.$transaction(async (tx) => {
      const row = await tx.apiToken.findUnique({ where: { name } });
      if (!row) throw new NotFoundError("token", name);
      await tx.apiToken.delete({ where: { id: row.id } });
      return this.events.record(tx, [{ kind: "token", subjectId: row.id, action: "revoke", data: { name } }]);
    });
    // This replica refuses it at once; the others when the event arrives, or within TOKEN_CACHE_TTL_MS.
    this.forget(name);
    await this.events.publish(evs);
  }

  /** Drops what this process knows of a revoked token; lookups under way keep their answer to themselves. */
  private forget(name: string): void {
    this.revocations++;
    for (const [hash, entry] of this.cache) if (entry.token?.name === name) this.cache.delete(hash);
    // A lookup under way may have read the token before the revoke: later requests look again.
    this.lookups.clear();
  }

  /** Drops the token Postgres announced as changed ("*": the table was emptied), as forget does. */
  private forgetHash(hash: string): void {
    this.revocations++;
    if (hash === "*") this.cache.clear();
    else this.cache.delete(hash);
    this.lookups.clear();
  }

  async onModuleDestroy(): Promise<void> {
    this.revokes?.unsubscribe();
    await this.changes.stop();
  }

  /**
   * On the very first start (no tokens at all) creates the `admin` token and writes it, with
   * the API's URL, where `ctl` looks (mode 0600). Replicas racing here: one insert wins.
   */
  async bootstrapAdmin(apiUrl: string): Promise<string | null> {
    if ((await this.prisma.apiToken.count()) > 0) return null;
    let secret: string;
    try {
      secret = (await this.create("admin")).token;
    } catch (e) {
      if (e instanceof ConflictError || (e as { code?: string }).code === "P2002") return null;
      throw e;
    }
    const file = writeCtlConfig(this.config.configDir, { url: apiUrl, token: secret });
    this.logger.log(`first start: created the admin API token and wrote it to ${file}`);
    return file;
  }
}

/** Writes `config.json` for ctl atomically, readable by its owner only. */
export function writeCtlConfig(dir: string, content: { url: string; token: string }): string {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const file = join(dir, "config.json");
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, JSON.stringify(content, null, 2) + "\n", { mode: 0o600 });
  chmodSync(tmp, 0o600);
  renameSync(tmp, file);
  return file;
}

function usedLongAgo(token: TokenView, now: number): boolean {
  return token.lastUsedAt === null || now - Date.parse(token.lastUsedAt) > LAST_USED_RESOLUTION_MS;
}

function view(r: { id: string; name: string; role: string; createdAt: Date; lastUsedAt: Date | null }): TokenView {
  return { id: r.id, name: r.name, role: r.role, createdAt: r.createdAt.toISOString(), lastUsedAt: r.lastUsedAt?.toISOString() ?? null };
}
