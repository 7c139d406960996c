// Rolling updates run as a sequence of reconciles with agents acting in between, in any order
// and at any pace. Stop-first: no slot ever has two tasks a node may be running (ASSIGNED …
// RUNNING), because a replacement is held until its slot's old task has stopped. Start-first:
// every slot keeps a running task throughout (the old one stops only once the new one runs).
// Both converge on the new version.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { decideReconcile, heldBy, slotHolds, TASK_STATES, type Task, type UpdateOrder } from "../src";
import { makeNodes, makeTask, NOW, replicated } from "./fixtures";
import { agentsAct, ON_NODE, reconcileOnce, type World } from "./rollout-sim";

function onNodePerSlot(tasks: readonly Task[]): Map<number, Task[]> {
  const m = new Map<number, Task[]>();
  for (const t of tasks) if (ON_NODE.has(t.state)) m.set(t.slot!, [...(m.get(t.slot!) ?? []), t]);
  return m;
}

const scenario = fc.record({
  replicas: fc.integer({ min: 1, max: 5 }),
  parallelism: fc.integer({ min: 0, max: 3 }),
  nodes: fc.integer({ min: 1, max: 3 }),
  choices: fc.array(fc.boolean(), { minLength: 1, maxLength: 64 }),
});

function run(order: UpdateOrder, s: fc.RecordValue<typeof scenario> extends infer T ? T : never, check: (w: World) => void): World {
  const nodes = makeNodes(s.nodes);
  const config = { parallelism: s.parallelism, delayMs: 0, monitorMs: 0, order };
  const prev = replicated(s.replicas, { image: "app:1", updateConfig: config });
  const spec = replicated(s.replicas, { image: "app:2", updateConfig: config });
  const w: World = {
    now: NOW,
    tasks: Array.from({ length: s.replicas }, (_, i) =>
      makeTask(`old${i + 1}`, { slot: i + 1, nodeId: nodes[i % nodes.length].id, specVersion: 1 }),
    ),
  };
  let n = 0;
  const ids = () => `t${n++}`;
  let c = 0;
  const pick = () => s.choices[c++ % s.choices.length];
  for (let step = 0; step < 24; step++) {
    w.now += 1_000;
    reconcileOnce(w, spec, prev, nodes, ids);
    check(w);
    agentsAct(w, pick);
    check(w);
  }
  // Then every agent does everything it was asked, until the update is through.
  for (let step = 0; step < 4 * s.replicas + 4; step++) {
    w.now += 1_000;
    reconcileOnce(w, spec, prev, nodes, ids);
    check(w);
    agentsAct(w, () => true);
    check(w);
  }
  return w;
}

function converged(w: World, replicas: number): void {
  const running = w.tasks.filter((t) => t.desiredState === "running" && t.state === "RUNNING");
  expect(running.map((t) => t.specVersion)).toEqual(Array(replicas).fill(2));
  expect(new Set(running.map((t) => t.slot)).size).toBe(replicas);
  expect(w.update?.status).toBe("completed");
}

describe("stop-first rolling update", () => {
  it("never has two tasks of one slot on nodes, and converges", () => {
    fc.assert(
      fc.property(scenario, (s) => {
        const w = run("stop-first", s, (w) => {
          for (const [slot, ts] of onNodePerSlot(w.tasks))
            expect(
              ts.map((t) => t.id),
              `slot ${slot}`,
            ).toHaveLength(1);
        });
        converged(w, s.replicas);
      }),
      { numRuns: 60 },
    );
  });

  it("holds the replacement, with a message, while the old task is stopping", () => {
    const nodes = makeNodes(1);
    const old = makeTask("old", { slot: 1, nodeId: "n1", specVersion: 1 });
    const spec = replicated(1, { image: "app:2" });
    const d = decideReconcile({
      serviceId: "svc",
      spec,
      taskVersion: 2,
      previousSpec: replicated(1, { image: "app:1" }),
      tasks: [old],
      nodes,
      others: new Map(),
      specs: new Map([["svc", spec]]),
      now: NOW,
      newId: () => "new",
    });
    expect(d.kind).toBe("write");
    if (d.kind !== "write") return;
    expect(d.result.plan.stop.map((x) => x.taskId)).toEqual(["old"]);
    expect(d.placed.assignments).toEqual([]);
    expect(d.placed.unassigned).toEqual([{ taskId: "new", reason: "waiting for task old to stop", counts: {} }]);
  });

  it("does not hold a replacement for a task on a down node or one that never reached a node", () => {
    const down = new Map(makeNodes(1, () => ({ status: "down" })).map((n) => [n.id, n]));
    const up = new Map(makeNodes(1).map((n) => [n.id, n]));
    const next = makeTask("new", { slot: 1, state: "NEW", specVersion: 2 });
    const stopping = makeTask("old", { slot: 1, nodeId: "n1", desiredState: "shutdown" });
    expect(heldBy(next, [stopping, next], down)).toBeUndefined();
    expect(heldBy(next, [stopping, next], up)?.id).toBe("old");
    expect(heldBy(next, [{ ...stopping, state: "PENDING" }, next], up)).toBeUndefined();
    expect(heldBy(next, [{ ...stopping, slot: 2 }, next], up)).toBeUndefined();
    expect(heldBy(next, [{ ...stopping, desiredState: "running", specVersion: 1 }, next], up)).toBeUndefined();
  });
});

describe("slotHolds (heldBy indexed once for a whole list)", () => {
  // The rule as first written, one scan of the list per task: the index must agree with it.
  function naive(t: Task, tasks: readonly Task[], down: ReadonlySet<string>): Task | undefined {
    const same = (a: Task, b: Task) =>
      a.serviceId === b.serviceId &&
      (a.slot !== undefined || b.slot !== undefined ? a.slot === b.slot : a.nodeId !== undefined && a.nodeId === b.nodeId);
    const stoppable = new Set<Task["state"]>(["ASSIGNED", "ACCEPTED", "PREPARING", "STARTING", "RUNNING"]);
    return tasks.find(
      (o) =>
        o.id !== t.id &&
        o.desiredState === "shutdown" &&
        stoppable.has(o.state) &&
        same(o, t) &&
        o.nodeId !== undefined &&
        !down.has(o.nodeId),
    );
  }
  const task = fc.record({
    serviceId: fc.constantFrom("a", "b"),
    slot: fc.option(fc.integer({ min: 1, max: 3 }), { nil: undefined }),
    nodeId: fc.option(fc.constantFrom("n1", "n2", "n3", "gone"), { nil: undefined }),
    state: fc.constantFrom(...TASK_STATES),
    desiredState: fc.constantFrom("running" as const, "shutdown" as const),
  });

  it("names the same holder as a scan of the list, for every task", () => {
    fc.assert(
      fc.property(fc.array(task, { maxLength: 30 }), fc.subarray(["n1", "n2", "n3"]), (raw, downIds) => {
        const tasks = raw.map((r, i) =>
          makeTask(`t${i}`, {
            serviceId: r.serviceId,
            state: r.state,
            desiredState: r.desiredState,
            ...(r.slot !== undefined ? { slot: r.slot } : {}),
            ...(r.nodeId !== undefined ? { nodeId: r.nodeId } : {}),
          }),
        );
        const nodes = new Map(makeNodes(3, (i) => ({ status: downIds.includes(`n${i + 1}`) ? "down" : "ready" })).map((n) => [n.id, n]));
        const down = new Set([...downIds, "gone"]);
        const holder = slotHolds(tasks, nodes);
        for (const t of tasks) {
          expect(holder(t)?.id).toBe(naive(t, tasks, down)?.id);
          expect(heldBy(t, tasks, nodes)?.id).toBe(naive(t, tasks, down)?.id);
        }
      }),
    );
  });
});

describe("start-first rolling update", () => {
  it("keeps a running task in every slot throughout, at most two per slot, and converges", () => {
    fc.assert(
      fc.property(scenario, (s) => {
        const w = run("start-first", s, (w) => {
          const perSlot = onNodePerSlot(w.tasks);
          for (let slot = 1; slot <= s.replicas; slot++) {
            const ts = perSlot.get(slot) ?? [];
            expect(ts.length, `slot ${slot}`).toBeLessThanOrEqual(2);
            expect(
              ts.some((t) => t.state === "RUNNING"),
              `slot ${slot} running`,
            ).toBe(true);
          }
        });
        converged(w, s.replicas);
      }),
      { numRuns: 60 },
    );
  });
});
