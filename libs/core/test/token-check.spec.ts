// When a cached token check may answer: the TTL bounds every entry, and the change feed extends
// found tokens' entries only while it is live and the entry was read during its session.
import { describe, expect, it } from "vitest";
import { cachedTokenCheck, type CachedTokenCheckInput } from "../src";

const base: CachedTokenCheckInput = { now: 10_000, checkedAt: 10_000, found: true, ttlMs: 1_000, watchedMs: 300_000 };
const liveFeed = { since: 5_000, seenUpTo: 9_800 };

describe("cachedTokenCheck", () => {
  it("without a feed, keeps an entry for the TTL and refreshes it past half", () => {
    expect(cachedTokenCheck({ ...base, now: 10_400 })).toBe("use");
    expect(cachedTokenCheck({ ...base, now: 10_600 })).toBe("use-and-refresh");
    expect(cachedTokenCheck({ ...base, now: 11_000 })).toBe("look-up");
  });

  it("with a live feed, keeps a found token's entry for watchedMs", () => {
    const at = (now: number) => cachedTokenCheck({ ...base, now, feed: { since: 5_000, seenUpTo: now - 200 } });
    expect(at(11_000)).toBe("use");
    expect(at(10_000 + 150_000)).toBe("use-and-refresh");
    expect(at(10_000 + 300_000)).toBe("look-up");
  });

  it("keeps a refused token's entry for the TTL only: a creation is not announced", () => {
    expect(cachedTokenCheck({ ...base, found: false, now: 11_000, feed: { since: 5_000, seenUpTo: 10_900 } })).toBe("look-up");
  });

  it("does not vouch for an entry read before the feed's session began: changes before it may be missed", () => {
    expect(cachedTokenCheck({ ...base, now: 11_500, feed: { since: 10_001, seenUpTo: 11_400 } })).toBe("look-up");
    expect(cachedTokenCheck({ ...base, now: 11_500, feed: { since: 10_000, seenUpTo: 11_400 } })).toBe("use");
  });

  it("falls back to the TTL once the feed has not caught up for a TTL (its session may be lost)", () => {
    expect(cachedTokenCheck({ ...base, now: 11_500, feed: { ...liveFeed, seenUpTo: 10_500 } })).toBe("look-up");
    expect(cachedTokenCheck({ ...base, now: 10_700, feed: { ...liveFeed, seenUpTo: 9_000 } })).toBe("use-and-refresh");
  });
});
