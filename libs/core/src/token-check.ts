// Whether a cached token check may answer a request, or the token must be looked up again.
// A revoked token must stop working on every API replica within `ttlMs`. Two things bound that:
// - the entry's age: an entry younger than the TTL may answer, whatever else is known;
// - a change feed (Postgres LISTEN on the token table's trigger) that has applied every change
//   committed up to `seenUpTo`: while that is younger than the TTL, an entry read after the
//   feed's session began (`since`) is known to be unrevoked, and may answer for `watchedMs`.
// Refused tokens (unknown) are never kept past the TTL: a creation is not announced.

/** What the change feed vouches for; absent while it has no live session. */
export interface TokenFeedState {
  /** When its current session started listening: changes after it are all announced. */
  since: number;
  /** Every change committed before this moment has been applied to the cache. */
  seenUpTo: number;
}

export interface CachedTokenCheckInput {
  now: number;
  /** When the lookup that made the entry started. */
  checkedAt: number;
  /** Whether the lookup found the token. */
  found: boolean;
  ttlMs: number;
  /** How long an entry the feed vouches for is kept at most. */
  watchedMs: number;
  feed?: TokenFeedState;
}

/**
 * `use`: answer from the entry. `use-and-refresh`: answer from it, and look the token up in the
 * background (past half the entry's life, so a token in steady use never waits for Postgres).
 * `look-up`: the request waits for a lookup.
 */
export type CachedTokenCheck = "use" | "use-and-refresh" | "look-up";

export function cachedTokenCheck(i: CachedTokenCheckInput): CachedTokenCheck {
  const age = i.now - i.checkedAt;
  const watched = i.found && i.feed !== undefined && i.checkedAt >= i.feed.since && i.now - i.feed.seenUpTo < i.ttlMs;
  const life = watched ? Math.max(i.watchedMs, i.ttlMs) : i.ttlMs;
  if (age >= life) return "look-up";
  return age >= life / 2 ? "use-and-refresh" : "use";
}
