// Rebalancing: which tasks move (the difference between where they are and where the scheduler
// would put them now), and a whole rebalance run with agents acting at any pace: 3/3/0 after a
// node came back becomes 2/2/2, never more than one batch below the replicas asked for.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { dueForAutoRebalance, rebalanceMoves, startUpdate, type Task, type UpdateOrder } from "../src";
import { makeNodes, makeTask, NOW, replicated } from "./fixtures";
import { agentsAct, reconcileOnce, type World } from "./rollout-sim";

const spec = (order: UpdateOrder = "stop-first", parallelism = 1) =>
  replicated(6, { image: "app:1", updateConfig: { parallelism, delayMs: 0, monitorMs: 0, order } });
const nodes = makeNodes(3);
/** Slots 1..6 on n1,n2,n1,n2,n1,n2: 3/3/0, as after n3 was drained and came back. */
const lopsided = (): Task[] =>
  Array.from({ length: 6 }, (_, i) => makeTask(`t${i + 1}`, { slot: i + 1, nodeId: i % 2 === 0 ? "n1" : "n2" }));
const perNode = (tasks: readonly Task[]) => {
  const m: Record<string, number> = {};
  for (const t of tasks) if (t.desiredState === "running" && t.state === "RUNNING") m[t.nodeId!] = (m[t.nodeId!] ?? 0) + 1;
  return m;
};

describe("rebalanceMoves", () => {
  const input = (tasks: readonly Task[]) => ({
    serviceId: "svc",
    tasks,
    nodes,
    others: new Map(),
    specs: new Map([["svc", spec()]]),
    now: NOW,
  });

  it("moves one task off each node holding three, the highest slots", () => {
    expect(rebalanceMoves(input(lopsided()))).toEqual(["t5", "t6"]);
  });

  it("moves nothing when the spread already matches, nor tasks that are not live", () => {
    const even = Array.from({ length: 6 }, (_, i) => makeTask(`t${i + 1}`, { slot: i + 1, nodeId: `n${(i % 3) + 1}` }));
    expect(rebalanceMoves(input(even))).toEqual([]);
    const dead = [...even, makeTask("gone", { slot: 7, nodeId: "n1", state: "FAILED", desiredState: "running" })];
    expect(rebalanceMoves(input(dead))).toEqual([]);
  });

  it("counts a drained node as taking nothing", () => {
    const drained = makeNodes(3, (i) => (i === 2 ? { availability: "drain" } : {}));
    expect(rebalanceMoves({ ...input(lopsided()), nodes: drained })).toEqual([]);
  });
});

describe("a rebalance run", () => {
  const run = (order: UpdateOrder, parallelism: number, choices: readonly boolean[], check: (w: World) => void): World => {
    const s = spec(order, parallelism);
    const w: World = { now: NOW, tasks: lopsided(), update: startUpdate(2, NOW, { rebalance: true, equivalentVersions: [1] }) };
    let n = 0;
    let c = 0;
    const pick = () => choices[c++ % choices.length];
    for (let step = 0; step < 40; step++) {
      w.now += 1_000;
      reconcileOnce(w, s, s, nodes, () => `new${n++}`);
      check(w);
      agentsAct(w, step < 24 ? pick : () => true);
      check(w);
    }
    return w;
  };

  it("ends 2/2/2 with the update completed, never more than one batch below the replicas", () => {
    fc.assert(
      fc.property(
        fc.constantFrom<UpdateOrder>("stop-first", "start-first"),
        fc.integer({ min: 1, max: 2 }),
        fc.array(fc.boolean(), { minLength: 1, maxLength: 32 }),
        (order, parallelism, choices) => {
          const w = run(order, parallelism, choices, (w) => {
            const running = Object.values(perNode(w.tasks)).reduce((a, b) => a + b, 0);
            expect(running).toBeGreaterThanOrEqual(6 - parallelism);
          });
          expect(perNode(w.tasks)).toEqual({ n1: 2, n2: 2, n3: 2 });
          expect(w.update?.status).toBe("completed");
          expect(w.update?.moving).toEqual(["t5", "t6"]);
          // Only the two moved tasks were replaced; the four others never stopped.
          const kept = w.tasks.filter((t) => ["t1", "t2", "t3", "t4"].includes(t.id));
          expect(kept.every((t) => t.desiredState === "running" && t.state === "RUNNING")).toBe(true);
        },
      ),
      { numRuns: 60 },
    );
  });

  it("completes at once when there is nothing to move", () => {
    const s = spec();
    const even = Array.from({ length: 6 }, (_, i) => makeTask(`t${i + 1}`, { slot: i + 1, nodeId: `n${(i % 3) + 1}` }));
    const w: World = { now: NOW, tasks: even, update: startUpdate(2, NOW, { rebalance: true, equivalentVersions: [1] }) };
    reconcileOnce(w, s, s, nodes, () => "x");
    expect(w.update).toMatchObject({ status: "completed", moving: [], message: "rebalance completed" });
    expect(w.tasks).toEqual(even);
  });
});

describe("dueForAutoRebalance", () => {
  const auto = { mode: { kind: "replicated", replicas: 6 }, rebalancePolicy: "auto" } as const;
  it("starts only for replicated services with the auto policy whose last update finished", () => {
    expect(dueForAutoRebalance(auto, null)).toBe(true);
    expect(dueForAutoRebalance({ ...auto, rebalancePolicy: "manual" }, null)).toBe(false);
    expect(dueForAutoRebalance({ ...auto, mode: { kind: "global" } }, null)).toBe(false);
    const moving = startUpdate(2, NOW, { rebalance: true });
    expect(dueForAutoRebalance(auto, moving)).toBe(false);
    expect(dueForAutoRebalance(auto, { ...moving, status: "completed" })).toBe(true);
    expect(dueForAutoRebalance(auto, { ...moving, status: "rollback-completed" })).toBe(true);
    expect(dueForAutoRebalance(auto, { ...moving, status: "paused" })).toBe(false);
    expect(dueForAutoRebalance(auto, { ...moving, status: "rollback-paused" })).toBe(false);
  });
});
