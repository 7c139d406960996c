import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  downCutoff,
  heartbeatPeriodMs,
  intakeKeepsUp,
  MAX_STRETCHED_PERIOD_MS,
  nodesDown,
  recoveryGraceMs,
  type LivenessInput,
} from "../src";

const NOW = 1_700_000_000_000;
const inputArb: fc.Arbitrary<LivenessInput> = fc.record({
  now: fc.constant(NOW),
  healthySince: fc.integer({ min: NOW - 300_000, max: NOW }),
  outageStartedAt: fc.integer({ min: NOW - 400_000, max: NOW }),
  intakeAliveAt: fc.option(fc.integer({ min: NOW - 60_000, max: NOW }), { nil: undefined }),
  periodMs: fc.constantFrom(500, 5_000),
  missedBeats: fc.constantFrom(3),
  agentMaxBackoffMs: fc.constantFrom(0, 2_000, 60_000),
});
const nodesArb = fc.array(
  fc.record({
    id: fc.uuid(),
    status: fc.constantFrom("ready", "down", "unknown"),
    lastHeartbeatAt: fc.option(fc.integer({ min: NOW - 300_000, max: NOW }), { nil: null }),
    periodMs: fc.option(fc.constantFrom(500, 5_000, 25_000), { nil: null }),
  }),
  { maxLength: 8 },
);

describe("node liveness", () => {
  it("declares nothing down until the control plane has been healthy for a window plus the agents' back-off", () => {
    fc.assert(
      fc.property(inputArb, nodesArb, (i, nodes) => {
        const backoff = Math.min(i.agentMaxBackoffMs, Math.max(0, i.healthySince - i.outageStartedAt) + i.periodMs);
        if (i.now - i.healthySince < i.missedBeats * i.periodMs + backoff) expect(nodesDown(nodes, i)).toEqual([]);
        expect(recoveryGraceMs(i)).toBeLessThanOrEqual(i.missedBeats * i.periodMs + i.agentMaxBackoffMs);
      }),
    );
  });

  it("a longer outage never shortens the grace, up to the agents' back-off cap", () => {
    fc.assert(
      fc.property(inputArb, fc.integer({ min: 0, max: 100_000 }), (i, more) => {
        expect(recoveryGraceMs({ ...i, outageStartedAt: i.outageStartedAt - more })).toBeGreaterThanOrEqual(recoveryGraceMs(i));
      }),
    );
  });

  it("declares nothing down unless an API process proved within a period that it takes heartbeats promptly", () => {
    fc.assert(
      fc.property(inputArb, nodesArb, (i, nodes) => {
        if (i.intakeAliveAt === undefined || i.now - i.intakeAliveAt > i.periodMs) expect(nodesDown(nodes, i)).toEqual([]);
      }),
    );
  });

  it("declares down only ready nodes silent for the whole window of the longer of their told and the current period", () => {
    fc.assert(
      fc.property(inputArb, nodesArb, (i, nodes) => {
        for (const { id, cutoff } of nodesDown(nodes, i)) {
          const n = nodes.find((x) => x.id === id)!;
          expect(n.status).toBe("ready");
          expect(cutoff).toBe(i.now - i.missedBeats * Math.max(i.periodMs, n.periodMs ?? 0));
          expect(n.lastHeartbeatAt ?? 0).toBeLessThan(cutoff);
        }
      }),
    );
  });

  it("no node goes down while a beat it sent after its last recorded one may still wait in an intake that kept up", () => {
    // The argument of intakeProven, checked: a node's next beat is sent within its period of the
    // last recorded one; if it arrived before the last proof minus a period, the proof (no beat
    // waited longer than a period) means it was recorded.
    fc.assert(
      fc.property(inputArb, nodesArb, (i, nodes) => {
        for (const { id } of nodesDown(nodes, i)) {
          const n = nodes.find((x) => x.id === id)!;
          const nextSentBy = (n.lastHeartbeatAt ?? 0) + (n.periodMs ?? i.periodMs);
          expect(nextSentBy).toBeLessThan(i.intakeAliveAt! - i.periodMs);
        }
      }),
    );
  });

  it("declares a silent node down once healthy long enough", () => {
    // Healthy 100 s after an outage of 5 minutes: the grace (15 s + the 60 s cap) is over.
    const i: LivenessInput = {
      now: NOW,
      healthySince: NOW - 100_000,
      outageStartedAt: NOW - 400_000,
      intakeAliveAt: NOW,
      periodMs: 5_000,
      missedBeats: 3,
      agentMaxBackoffMs: 60_000,
    };
    expect(downCutoff(i)).toBe(NOW - 15_000);
    expect(
      nodesDown(
        [
          { id: "a", status: "ready", lastHeartbeatAt: NOW - 16_000, periodMs: 5_000 },
          { id: "b", status: "ready", lastHeartbeatAt: NOW - 1_000, periodMs: 5_000 },
          // Told 25 s before the cluster shrank: it keeps that pace until its next reply.
          { id: "c", status: "ready", lastHeartbeatAt: NOW - 16_000, periodMs: 25_000 },
        ],
        i,
      ),
    ).toEqual([{ id: "a", cutoff: NOW - 15_000 }]);
    // An intake last proven more than a period ago proves nothing.
    expect(
      nodesDown([{ id: "a", status: "ready", lastHeartbeatAt: NOW - 16_000, periodMs: null }], { ...i, intakeAliveAt: NOW - 5_001 }),
    ).toEqual([]);
    expect(
      nodesDown([{ id: "a", status: "ready", lastHeartbeatAt: NOW - 16_000, periodMs: null }], {
        ...i,
        healthySince: NOW - 70_000,
        outageStartedAt: NOW - 370_000,
      }),
    ).toEqual([]);
    // After a 2 s blip agents retry within a period or two: 15 s + 7 s.
    expect(recoveryGraceMs({ ...i, outageStartedAt: i.healthySince - 2_000 })).toBe(22_000);
  });
});

import { engineUrlFor } from "../src";

describe("engineUrlFor", () => {
  const base = { reported: "http://203.0.113.9:1", current: "https://198.18.0.3:2376", agentPort: 2376 };
  it("a machine's node is dialled at the machine's address whoever reports", () => {
    for (const reporterIsAdmin of [true, false]) {
      expect(engineUrlFor({ ...base, reporterIsAdmin, machine: { ip: "198.18.0.3" } })).toBe("https://198.18.0.3:2376");
      expect(engineUrlFor({ ...base, reporterIsAdmin, machine: { ip: "fd00::3" } })).toBe("https://[fd00::3]:2376");
      expect(engineUrlFor({ ...base, reporterIsAdmin, machine: { ip: null } })).toBeNull();
    }
  });
  it("a node without a machine takes the reported URL from an admin token only", () => {
    expect(engineUrlFor({ ...base, reporterIsAdmin: true })).toBe("http://203.0.113.9:1");
    expect(engineUrlFor({ ...base, reporterIsAdmin: false })).toBe("https://198.18.0.3:2376");
    expect(engineUrlFor({ ...base, reporterIsAdmin: false, current: null })).toBeNull();
  });
});

describe("heartbeat intake", () => {
  const base = { now: NOW, periodMs: 5_000, oldestWaitingSince: undefined, longestWaitMs: 0, loopDelayMs: 20 };
  it("keeps up only while no beat waits, or waited, longer than a period, event loop delay included", () => {
    expect(intakeKeepsUp(base)).toBe(true);
    expect(intakeKeepsUp({ ...base, oldestWaitingSince: NOW - 4_000 })).toBe(true);
    expect(intakeKeepsUp({ ...base, oldestWaitingSince: NOW - 5_001 })).toBe(false);
    expect(intakeKeepsUp({ ...base, longestWaitMs: 5_001 })).toBe(false);
    expect(intakeKeepsUp({ ...base, longestWaitMs: 4_000, loopDelayMs: 1_500 })).toBe(false);
    expect(intakeKeepsUp({ ...base, loopDelayMs: 6_000 })).toBe(false);
  });
});

describe("heartbeat period", () => {
  it("is the configured one for a small cluster, stretched to the beat rate for a large one, bounded", () => {
    const p = { basePeriodMs: 5_000, maxBeatsPerSecond: 200 };
    expect(heartbeatPeriodMs({ ...p, nodes: 0 })).toBe(5_000);
    expect(heartbeatPeriodMs({ ...p, nodes: 1_000 })).toBe(5_000);
    expect(heartbeatPeriodMs({ ...p, nodes: 1_001 })).toBe(6_000);
    expect(heartbeatPeriodMs({ ...p, nodes: 5_000 })).toBe(25_000);
    expect(heartbeatPeriodMs({ ...p, nodes: 1_000_000 })).toBe(MAX_STRETCHED_PERIOD_MS);
    // A configured period longer than the bound stays.
    expect(heartbeatPeriodMs({ ...p, basePeriodMs: 120_000, nodes: 1_000_000 })).toBe(120_000);
  });

  it("never below the configured period, never above the bound, never shorter for more nodes, and keeps the rate when it can", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 50, max: 600_000 }),
        fc.integer({ min: 0, max: 200_000 }),
        fc.integer({ min: 0, max: 1_000 }),
        fc.integer({ min: 1, max: 5_000 }),
        (basePeriodMs, nodes, more, maxBeatsPerSecond) => {
          const p = heartbeatPeriodMs({ basePeriodMs, nodes, maxBeatsPerSecond });
          expect(p).toBeGreaterThanOrEqual(basePeriodMs);
          expect(p).toBeLessThanOrEqual(Math.max(basePeriodMs, MAX_STRETCHED_PERIOD_MS));
          expect(heartbeatPeriodMs({ basePeriodMs, nodes: nodes + more, maxBeatsPerSecond })).toBeGreaterThanOrEqual(p);
          if (p < MAX_STRETCHED_PERIOD_MS) expect((nodes * 1000) / p).toBeLessThanOrEqual(maxBeatsPerSecond);
        },
      ),
    );
  });
});
