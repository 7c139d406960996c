import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { BEAT_JITTER, jitteredBeatDelayMs } from "../src";

/** A seeded generator of numbers in [0, 1) (mulberry32), so the fleet below is the same every run. */
function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

describe("jitteredBeatDelayMs", () => {
  it("shortens a wait by at most BEAT_JITTER, never lengthens it", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 600_000 }), fc.double({ min: 0, max: 1, noNaN: true }), (ms, r) => {
        const d = jitteredBeatDelayMs(ms, r);
        expect(d).toBeLessThanOrEqual(ms);
        expect(d).toBeGreaterThanOrEqual(Math.floor(ms * (1 - BEAT_JITTER)));
      }),
    );
    expect(jitteredBeatDelayMs(25_000, 0)).toBe(25_000);
    expect(jitteredBeatDelayMs(25_000, 0.5)).toBe(23_750);
  });

  it("spreads agents that beat in step: each period fewer of them land in the same second", () => {
    const period = 25_000;
    const random = seeded(7);
    // 5,000 agents answered at the same instant (the end of a stall, or an outage's retries).
    let at = Array.from({ length: 5_000 }, () => 0);
    const busiestSecond: number[] = [];
    for (let beat = 0; beat < 4; beat++) {
      at = at.map((t) => t + jitteredBeatDelayMs(period, random()));
      const perSecond = new Map<number, number>();
      for (const t of at) perSecond.set(Math.floor(t / 1000), (perSecond.get(Math.floor(t / 1000)) ?? 0) + 1);
      busiestSecond.push(Math.max(...perSecond.values()));
    }
    // One period on, the burst is spread over BEAT_JITTER of the period (2.5 s); then wider still.
    expect(busiestSecond[0]).toBeLessThanOrEqual(2_200);
    expect(busiestSecond[3]).toBeLessThanOrEqual(1_500);
    for (let i = 1; i < busiestSecond.length; i++) expect(busiestSecond[i]).toBeLessThan(busiestSecond[i - 1]!);
  });
});
