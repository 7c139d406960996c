import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { downCutoff, nodesDown, recoveryGraceMs, type LivenessInput } from "../src";

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

  it("declares nothing down while no API process takes heartbeats", () => {
    fc.assert(
      fc.property(inputArb, nodesArb, (i, nodes) => {
        if (i.intakeAliveAt === undefined || i.now - i.intakeAliveAt > 2 * i.periodMs) expect(nodesDown(nodes, i)).toEqual([]);
      }),
    );
  });

  it("declares down only ready nodes silent for the whole window", () => {
    fc.assert(
      fc.property(inputArb, nodesArb, (i, nodes) => {
        for (const id of nodesDown(nodes, i)) {
          const n = nodes.find((x) => x.id === id)!;
          expect(n.status).toBe("ready");
          expect(n.lastHeartbeatAt ?? 0).toBeLessThan(i.now - i.missedBeats * i.periodMs);
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
          { id: "a", status: "ready", lastHeartbeatAt: NOW - 16_000 },
          { id: "b", status: "ready", lastHeartbeatAt: NOW - 1_000 },
        ],
        i,
      ),
    ).toEqual(["a"]);
    expect(
      nodesDown([{ id: "a", status: "ready", lastHeartbeatAt: NOW - 16_000 }], {
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
