// Properties of one reconcile's decision: placements go only to ready, active nodes; an
// "unchanged" decision truly has nothing to write; and deciding again from the world the
// decision leaves finds nothing more to do for a steady service.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { decideReconcile, isLive, stopOutcome, TASK_STATES, type NodeInfo, type Task } from "../src";
import { makeNode, NOW, replicated } from "./fixtures";

const worldArb = fc.record({
  replicas: fc.integer({ min: 0, max: 6 }),
  nodes: fc.array(
    fc.record({ status: fc.constantFrom("ready", "ready", "down"), availability: fc.constantFrom("active", "active", "drain") }),
    { minLength: 1, maxLength: 4 },
  ),
  tasks: fc.array(
    fc.record({
      slot: fc.integer({ min: 1, max: 6 }),
      node: fc.integer({ min: 0, max: 3 }),
      state: fc.constantFrom(...TASK_STATES),
      desired: fc.constantFrom("running", "shutdown"),
    }),
    { maxLength: 10 },
  ),
});

function decide(w: fc.RecordValue<typeof worldArb> extends infer T ? T : never, counted = true) {
  const nodes = w.nodes.map((n, i) =>
    makeNode(`n${i}`, { status: n.status as NodeInfo["status"], availability: n.availability as NodeInfo["availability"] }),
  );
  const tasks = w.tasks.map((t, i): Task => ({
    id: `t${i}`,
    serviceId: "svc",
    slot: t.slot,
    ...(["NEW", "PENDING"].includes(t.state) ? {} : { nodeId: `n${Math.min(t.node, nodes.length - 1)}` }),
    specVersion: 1,
    state: t.state,
    desiredState: t.desired as Task["desiredState"],
    createdAt: NOW - 120_000,
    updatedAt: NOW - 60_000,
    finishedAt: NOW - 60_000,
  }));
  const spec = replicated(w.replicas, { restartPolicy: { condition: "any", delayMs: 0, maxAttempts: 0, windowMs: 0 } });
  let n = 0;
  return {
    nodes,
    decision: decideReconcile({
      serviceId: "svc",
      spec,
      taskVersion: 1,
      tasks,
      nodes,
      ...(counted ? { others: new Map([["n0", new Map([["other", 1]])]]) } : {}),
      specs: new Map([
        ["svc", spec],
        ["other", replicated(1)],
      ]),
      now: NOW,
      newId: () => `new${n++}`,
    }),
  };
}

/** One ready node running slots 1 and 2 of a service of `replicas`. */
const twoRunning = (replicas: number) => ({
  replicas,
  nodes: [{ status: "ready" as const, availability: "active" as const }],
  tasks: [1, 2].map((slot) => ({ slot, node: 0, state: "RUNNING" as const, desired: "running" as const })),
});

describe("decideReconcile", () => {
  it("places tasks only on ready, active nodes", () => {
    fc.assert(
      fc.property(worldArb, (w) => {
        const { nodes, decision } = decide(w);
        if (decision.kind !== "write") return;
        for (const a of decision.placed.assignments) {
          const node = nodes.find((x) => x.id === a.nodeId)!;
          expect(node.status).toBe("ready");
          expect(node.availability).toBe("active");
        }
      }),
    );
  });

  it("never leaves more live slots than replicas asked, and decides 'unchanged' for a steady service", () => {
    fc.assert(
      fc.property(worldArb, (w) => {
        const { decision } = decide(w);
        if (decision.kind !== "write") return;
        const slots = new Set(decision.result.tasks.filter((t) => isLive(t)).map((t) => t.slot));
        expect(slots.size).toBeLessThanOrEqual(
          Math.max(
            w.replicas,
            new Set(
              w.tasks.filter((t) => t.desired === "running" && isLive({ state: t.state, desiredState: "running" })).map((t) => t.slot),
            ).size,
          ),
        );
        for (const t of decision.result.tasks) if (isLive(t)) expect(t.slot).toBeLessThanOrEqual(Math.max(w.replicas, 6));
      }),
    );
    const steady = decide(twoRunning(2));
    expect(steady.decision.kind).toBe("unchanged");
    const scaled = decide(twoRunning(3));
    expect(scaled.decision.kind === "write" && scaled.decision.placed.assignments.length).toBe(1);
  });
});

describe("decideReconcile without the other services' counts", () => {
  it("decides as it would with them, unless it has tasks to place: then it asks for them", () => {
    fc.assert(
      fc.property(worldArb, (w) => {
        const full = decide(w).decision;
        const bare = decide(w, false).decision;
        if (bare.kind === "needs-counts")
          expect(full.kind === "write" && full.placed.assignments.length + full.placed.unassigned.length).toBeGreaterThan(0);
        else expect(bare).toEqual(full);
      }),
    );
    const converged = decide(twoRunning(2), false);
    expect(converged.decision.kind).toBe("unchanged");
    const scaled = decide(twoRunning(3), false);
    expect(scaled.decision.kind).toBe("needs-counts");
  });
});

describe("stopOutcome", () => {
  it("ends lost tasks ORPHANED, unsent ones SHUTDOWN, and leaves the rest to their agent", () => {
    fc.assert(
      fc.property(fc.constantFrom(...TASK_STATES), fc.boolean(), (state, orphan) => {
        const to = stopOutcome({ orphan }, state);
        if (to === null)
          expect(
            ["ASSIGNED", "ACCEPTED", "PREPARING", "STARTING", "RUNNING"].some((s) => s === state) ||
              ["COMPLETE", "SHUTDOWN", "FAILED", "REJECTED", "ORPHANED"].includes(state),
          ).toBe(true);
        if (orphan && !["COMPLETE", "SHUTDOWN", "FAILED", "REJECTED", "ORPHANED"].includes(state)) expect(to).toBe("ORPHANED");
      }),
    );
  });
});
