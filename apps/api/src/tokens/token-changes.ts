// The token table's changes as Postgres announces them: a trigger (migration
// 20261206230000_token_change_notify) NOTIFYs every delete of a token, and every change of its
// hash, name or role, with the old hash, whoever made it (this API, another replica, a `psql`
// session). This process LISTENs on a session of its own and drops what it cached of the token.
//
// A lost announcement must never let a revoked token work for long, so the feed also proves it
// is caught up: every TICK_MS it NOTIFYs itself on a channel of its own and waits for that to
// come back. Postgres delivers notifications in commit order, so when the tick sent at time t
// arrives, every change committed before t has arrived first: the cache may trust its entries
// up to t (libs/core cachedTokenCheck). A session that breaks, or a Postgres too busy to echo
// ticks, stops vouching within a TTL, and checks fall back to looking tokens up.
import { Logger } from "@nestjs/common";
import { randomBytes } from "node:crypto";
import type pg from "pg";
import type { Clock, TokenFeedState } from "@flotilla/core";

export const TOKEN_CHANGES_CHANNEL = "flotilla_token_changes";
// Four echoes a second: a TTL (1 s) outlasts three late ones before the cache stops trusting.
const TICK_MS = 250;
const RECONNECT_MS = 1_000;

export class TokenChangeFeed {
  private readonly logger = new Logger("token-changes");
  private running?: Promise<void>;
  private stopped = false;
  private session?: pg.Client;
  private state?: TokenFeedState;
  /** Whether the last attempt failed: a failure is logged once, not every retry. */
  private failing = false;

  constructor(
    private readonly openSession: () => pg.Client,
    private readonly clock: Clock,
    private readonly changed: (oldHash: string) => void,
  ) {}

  /** Starts listening (once); checks are looked up as usual until the first echo. */
  start(): void {
    if (this.stopped) return;
    this.running ??= this.listen();
  }

  /** What the feed vouches for now, or undefined while it has no live session. */
  current(): TokenFeedState | undefined {
    return this.state;
  }

  /** Stops listening; a connect under way ends its session as soon as it is made. */
  async stop(): Promise<void> {
    this.stopped = true;
    await this.session?.end().catch(() => undefined);
  }

  private async listen(): Promise<void> {
    while (!this.stopped) {
      try {
        await this.oneSession();
      } catch (e) {
        if (!this.failing && !this.stopped)
          this.logger.warn(`token changes not followed (tokens are looked up meanwhile): ${(e as Error).message}`);
        this.failing = true;
      }
      if (!this.stopped) await new Promise((r) => setTimeout(r, RECONNECT_MS).unref());
    }
  }

  /** One session, from connecting until it breaks or the feed stops. */
  private async oneSession(): Promise<void> {
    const session = (this.session = this.openSession());
    const tickChannel = `flotilla_tick_${randomBytes(8).toString("hex")}`;
    let ticker: NodeJS.Timeout | undefined;
    try {
      const ended = new Promise<Error>((resolve) => {
        session.on("error", resolve);
        session.on("end", () => resolve(new Error("session ended")));
      });
      session.on("notification", (n) => {
        if (n.channel === tickChannel) {
          const sentAt = Number(n.payload);
          if (this.state && sentAt > this.state.seenUpTo) this.state = { ...this.state, seenUpTo: sentAt };
        } else if (n.channel === TOKEN_CHANGES_CHANNEL && n.payload) this.changed(n.payload);
      });
      await session.connect();
      if (this.stopped) return;
      // The echoes are not worth waiting for a synchronous standby.
      await session.query("SET synchronous_commit TO local");
      await session.query(`LISTEN ${TOKEN_CHANGES_CHANNEL}`);
      await session.query(`LISTEN ${tickChannel}`);
      // Lookups that start from now on read after LISTEN took effect: any later change is announced.
      this.state = { since: this.clock.now(), seenUpTo: -Infinity };
      if (this.failing) this.logger.log("following token changes again");
      this.failing = false;
      let echoing = false;
      ticker = setInterval(() => {
        if (echoing) return;
        echoing = true;
        session
          .query("SELECT pg_notify($1, $2)", [tickChannel, String(this.clock.now())])
          .catch(() => undefined)
          .finally(() => (echoing = false));
      }, TICK_MS);
      ticker.unref();
      const cause = await ended;
      if (!this.stopped) throw cause;
    } finally {
      this.state = undefined;
      if (ticker) clearInterval(ticker);
      session.removeAllListeners("notification");
      await session.end().catch(() => undefined);
    }
  }
}
