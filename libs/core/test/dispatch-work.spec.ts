import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { dispatchTargets, dispatchWork, TASK_STATES, type DispatchTask, type Task } from "../src";
import { makeTask, NOW } from "./fixtures";

const taskArb = fc
  .record({
    i: fc.integer({ min: 0, max: 1000 }),
    state: fc.constantFrom(...TASK_STATES),
    desired: fc.constantFrom("running" as const, "shutdown" as const),
    age: fc.constantFrom(0, 10_000, 40_000),
    container: fc.boolean(),
  })
  .map(({ i, state, desired, age, container }): DispatchTask => ({
    task: makeTask(`t${i}`, { state, desiredState: desired, updatedAt: NOW - age }),
    containerId: container ? `c${i}` : null,
  }));

describe("dispatchWork", () => {
  it("starts only tasks wanted running that are assigned or abandoned claims, and stops only unwanted unfinished ones", () => {
    fc.assert(
      fc.property(fc.array(taskArb, { maxLength: 20 }), (tasks) => {
        const w = dispatchWork(tasks, NOW);
        for (const t of w.start) {
          expect(t.task.desiredState).toBe("running");
          expect(
            t.task.state === "ASSIGNED" || (t.task.state === "ACCEPTED" && t.containerId === null && t.task.updatedAt < NOW - 30_000),
          ).toBe(true);
        }
        for (const t of w.stop) {
          expect(t.task.desiredState).toBe("shutdown");
          expect(["ASSIGNED", "ACCEPTED", "PREPARING", "STARTING", "RUNNING"]).toContain(t.task.state);
        }
        expect(w.start.some((t) => w.stop.includes(t))).toBe(false);
      }),
    );
  });
});

describe("dispatchTargets", () => {
  const ready = new Set(["n1", "n2"]);

  it("names the nodes of new assignments (start) and of stopped tasks that may have a container (stop), on ready nodes only", () => {
    const read = [
      makeTask("run1", { nodeId: "n1", state: "RUNNING" }),
      makeTask("pend", { state: "PENDING" }),
      makeTask("done", { nodeId: "n2", state: "FAILED" }),
      makeTask("gone", { nodeId: "n3", state: "RUNNING" }),
    ];
    const targets = dispatchTargets(
      read,
      [{ taskId: "run1" }, { taskId: "pend" }, { taskId: "done" }, { taskId: "gone" }, { taskId: "unknown" }],
      [
        { taskId: "new1", nodeId: "n2" },
        { taskId: "new2", nodeId: "n2" },
        { taskId: "new3", nodeId: "n3" },
      ],
      ready,
    );
    expect(targets).toEqual([
      { nodeId: "n2", start: true, stop: false },
      { nodeId: "n1", start: false, stop: true },
    ]);
  });

  it("covers exactly the touched tasks the node's dispatch would act on once the plan is written", () => {
    const arb = fc.array(
      fc.record({
        state: fc.constantFrom(...TASK_STATES),
        node: fc.constantFrom("n1", "n2", "n3", undefined),
        stopped: fc.boolean(),
        assignTo: fc.constantFrom("n1", "n2", "n3", undefined),
      }),
      { maxLength: 20 },
    );
    fc.assert(
      fc.property(arb, (rows) => {
        const read: Task[] = rows.map((r, i) => makeTask(`t${i}`, { state: r.state, ...(r.node ? { nodeId: r.node } : {}) }));
        const stops = rows.flatMap((r, i) => (r.stopped ? [{ taskId: `t${i}` }] : []));
        const assignments = rows.flatMap((r, i) => (r.assignTo ? [{ taskId: `new${i}`, nodeId: r.assignTo }] : []));
        // The written world, restricted to what this write touched, through dispatch's own rule.
        const touched: DispatchTask[] = [
          ...read.filter((_, i) => rows[i].stopped).map((t) => ({ task: { ...t, desiredState: "shutdown" as const }, containerId: null })),
          ...assignments.map((a) => ({ task: makeTask(a.taskId, { state: "ASSIGNED", nodeId: a.nodeId }), containerId: null })),
        ];
        const want = new Map<string, { start: boolean; stop: boolean }>();
        const w = dispatchWork(touched, NOW);
        for (const [part, list] of [["start", w.start] as const, ["stop", w.stop] as const])
          for (const t of list) {
            const n = t.task.nodeId;
            if (n === undefined || !ready.has(n)) continue;
            want.set(n, { ...(want.get(n) ?? { start: false, stop: false }), [part]: true });
          }
        const got = new Map(dispatchTargets(read, stops, assignments, ready).map(({ nodeId, ...p }) => [nodeId, p]));
        expect(got).toEqual(want);
      }),
    );
  });
});
