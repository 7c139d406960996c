// Properties of the heartbeat fold over arbitrary nodes and reports: forward only, strays never
// include a wanted task's container, a stale report never removes or counts anything, and a
// container is vanished only after two current reports lacked it.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { canTransition, foldReport, TASK_STATES, VANISHED_AFTER_REPORTS, type FoldInput, type NodeTask } from "../src";
import { makeTask, NOW } from "./fixtures";

const SETTLE = 1_500;
const STALE_CLAIM = 30_000;

const nodeTaskArb = (i: number): fc.Arbitrary<NodeTask> =>
  fc
    .record({
      state: fc.constantFrom(...TASK_STATES.filter((s) => !["COMPLETE", "SHUTDOWN", "FAILED", "REJECTED", "ORPHANED"].includes(s))),
      desired: fc.constantFrom("running" as const, "shutdown" as const),
      age: fc.constantFrom(0, 500, 10_000, 60_000),
      hasContainer: fc.boolean(),
      missing: fc.integer({ min: 0, max: 3 }),
    })
    .map(({ state, desired, age, hasContainer, missing }) => ({
      task: makeTask(`t${i}`, { state, desiredState: desired, updatedAt: NOW - age }),
      containerId: hasContainer ? `c${i}` : null,
      missingReports: missing,
    }));

const inputArb: fc.Arbitrary<FoldInput> = fc
  .integer({ min: 0, max: 6 })
  .chain((n) => fc.tuple(fc.tuple(...Array.from({ length: n }, (_, i) => nodeTaskArb(i))), fc.boolean()))
  .chain(([tasks, current]) =>
    fc
      .record({
        reported: fc.array(
          fc.record({
            task: fc.integer({ min: 0, max: 9 }),
            kind: fc.constantFrom("created", "running", "exited"),
            labelled: fc.boolean(),
          }),
          { maxLength: 8 },
        ),
        wanted: fc.subarray(Array.from({ length: 10 }, (_, i) => `t${i}`)),
      })
      .map(({ reported, wanted }) => ({
        tasks,
        reported: reported.map((r, k) => ({
          id: k === 0 ? `c${r.task}` : `c${r.task}-${k}`,
          ...(r.labelled ? { taskId: `t${r.task}` } : {}),
          observation: r.kind === "exited" ? { kind: "exited" as const, exitCode: 1 } : { kind: r.kind },
        })),
        wanted: new Set(wanted),
        now: NOW,
        receivedAt: NOW - 1_000,
        current,
        settleMs: SETTLE,
        staleClaimMs: STALE_CLAIM,
      })),
  );

describe("foldReport", () => {
  it("only moves tasks forward, and only tasks of this node", () => {
    fc.assert(
      fc.property(inputArb, (input) => {
        const ids = new Set(input.tasks.map((t) => t.task.id));
        for (const c of foldReport(input).changes) {
          expect(ids.has(c.taskId)).toBe(true);
          if (c.next.state !== c.from) expect(canTransition(c.from, c.next.state)).toBe(true);
        }
      }),
    );
  });

  it("never calls a container stray when its task is on the node or wanted anywhere, nor from a stale report", () => {
    fc.assert(
      fc.property(inputArb, (input) => {
        const { strays } = foldReport(input);
        if (!input.current) expect(strays).toEqual([]);
        const onNode = new Set(input.tasks.map((t) => t.task.id));
        for (const id of strays) {
          const c = input.reported.find((r) => r.id === id)!;
          expect(c.taskId).toBeDefined();
          expect(onNode.has(c.taskId!) || input.wanted.has(c.taskId!)).toBe(false);
        }
      }),
    );
  });

  it("vanishes a task only after two current reports lacked its settled container", () => {
    fc.assert(
      fc.property(inputArb, (input) => {
        for (const c of foldReport(input).changes) {
          if (input.reported.some((r) => r.taskId === c.taskId)) continue;
          const nt = input.tasks.find((t) => t.task.id === c.taskId)!;
          expect(input.current).toBe(true);
          expect(nt.missingReports + 1).toBeGreaterThanOrEqual(VANISHED_AFTER_REPORTS);
          expect(nt.task.updatedAt).toBeLessThanOrEqual(input.receivedAt - SETTLE);
          expect(c.next.state).toBe(nt.task.desiredState === "shutdown" ? "SHUTDOWN" : "FAILED");
        }
      }),
    );
  });

  it("leaves fresh claims to their dispatcher", () => {
    fc.assert(
      fc.property(inputArb, (input) => {
        const r = foldReport(input);
        const fresh = input.tasks.filter((t) => t.task.state === "ACCEPTED" && t.task.updatedAt > NOW - STALE_CLAIM);
        for (const t of fresh) expect(r.changes.some((c) => c.taskId === t.task.id)).toBe(false);
        expect(r.deferred).toBe(fresh.length > 0);
      }),
    );
  });
});

describe("foldReport, cases", () => {
  const running = (missing: number, age = 60_000): NodeTask => ({
    task: makeTask("t1", { state: "RUNNING", updatedAt: NOW - age }),
    containerId: "c1",
    missingReports: missing,
  });
  const base = {
    reported: [],
    wanted: new Set<string>(),
    now: NOW,
    receivedAt: NOW,
    current: true,
    settleMs: SETTLE,
    staleClaimMs: STALE_CLAIM,
  };

  it("counts a first miss, fails the task on the second", () => {
    const first = foldReport({ ...base, tasks: [running(0)] });
    expect(first.changes).toEqual([]);
    expect(first.missing.get("t1")).toBe(1);
    const second = foldReport({ ...base, tasks: [running(1)] });
    expect(second.changes[0]?.next.state).toBe("FAILED");
  });

  it("a report received before the task settled, however late it is folded, does not count", () => {
    const r = foldReport({ ...base, receivedAt: NOW - 59_500, tasks: [running(1)] });
    expect(r.changes).toEqual([]);
    expect(r.missing.size).toBe(0);
  });

  it("a report from before the last outage changes nothing", () => {
    const r = foldReport({
      ...base,
      current: false,
      tasks: [running(1)],
      reported: [{ id: "x", taskId: "gone", observation: { kind: "running" } }],
    });
    expect(r).toMatchObject({ changes: [], strays: [] });
    expect(r.missing.size).toBe(0);
  });

  it("resets the count when the container is reported again", () => {
    const r = foldReport({ ...base, tasks: [running(1)], reported: [{ id: "c1", taskId: "t1", observation: { kind: "running" } }] });
    expect(r.missing.get("t1")).toBe(0);
    expect(r.changes).toEqual([]);
  });

  it("a container whose task is wanted elsewhere is not a stray; an unknown task's is", () => {
    const r = foldReport({
      ...base,
      tasks: [],
      wanted: new Set(["w"]),
      reported: [
        { id: "a", taskId: "w", observation: { kind: "running" } },
        { id: "b", taskId: "old", observation: { kind: "running" } },
        { id: "c", observation: { kind: "running" } },
      ],
    });
    expect(r.strays).toEqual(["b"]);
  });
});
