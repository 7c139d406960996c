import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { downCutoff, nodesDown, recoveryGraceMs, type LivenessInput } from "../src";

const NOW = 1_700_000_000_000;
const inputArb: fc.Arbitrary<LivenessInput> = fc.record({
  now: fc.constant(NOW),
  healthySince: fc.integer({ min: NOW - 300_000, max: NOW }),
  intakeAliveAt: fc.option(fc.integer({ min: NOW - 60_000, max: NOW }), { nil: undefined }),
  periodMs: fc.constantFrom(500, 5_000),
  missedBeats: fc.constantFrom(3),
  agentMaxBackoffMs: fc.constantFrom(0, 2_000, 60_000),
});
const nodesArb = fc.array(
  fc.record({ id: fc.uuid(), status: fc.constantFrom("ready", "down", "unknown"), lastHeartbeatAt: fc.option(fc.integer({ min: NOW - 300_000, max: NOW }), { nil: null }) }),
  { maxLength: 8 },
);

describe("node liveness", () => {
  it("declares nothing down until the control plane has been healthy for a window plus the agents' back-off", () => {
    fc.assert(
      fc.property(inputArb, nodesArb, (i, nodes) => {
        if (i.now - i.healthySince < recoveryGraceMs(i)) expect(nodesDown(nodes, i)).toEqual([]);
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
    const i: LivenessInput = { now: NOW, healthySince: NOW - 100_000, intakeAliveAt: NOW, periodMs: 5_000, missedBeats: 3, agentMaxBackoffMs: 60_000 };
    expect(downCutoff(i)).toBe(NOW - 15_000);
    expect(nodesDown([{ id: "a", status: "ready", lastHeartbeatAt: NOW - 16_000 }, { id: "b", status: "ready", lastHeartbeatAt: NOW - 1_000 }], i)).toEqual(["a"]);
    expect(nodesDown([{ id: "a", status: "ready", lastHeartbeatAt: NOW - 16_000 }], { ...i, healthySince: NOW - 70_000 })).toEqual([]);
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
