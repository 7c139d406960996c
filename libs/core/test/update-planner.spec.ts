import { describe, expect, it } from "vitest";
import {
  isUpdateActive,
  planUpdate,
  startUpdate,
  type NodeInfo,
  type ServiceSpec,
  type Task,
  type UpdateConfig,
  type UpdateDecision,
  type UpdateState,
} from "../src";
import { makeNode, makeNodes, makeSpec, makeTask, NOW, replicated } from "./fixtures";

const STARTED = NOW - 60_000;

function cfg(c: Partial<UpdateConfig> = {}): UpdateConfig {
  return { parallelism: 1, delayMs: 0, monitorMs: 5_000, failureAction: "pause", maxFailureRatio: 0, order: "stop-first", ...c };
}

const v1 = replicated(4, { image: "app:1" });
const v2 = (c: Partial<UpdateConfig> = {}, replicas = 4): ServiceSpec => replicated(replicas, { image: "app:2", updateConfig: cfg(c) });

/** Slot s at version v on node n{s}. */
const slot = (s: number, v: number, over: Partial<Task> = {}): Task =>
  makeTask(`v${v}s${s}${over.state ? `-${over.state}` : ""}`, {
    slot: s,
    nodeId: `n${s}`,
    specVersion: v,
    createdAt: STARTED - 1,
    ...over,
  });
const oldAll = (n = 4): Task[] => Array.from({ length: n }, (_, i) => slot(i + 1, 1));
const newer = (s: number, over: Partial<Task> = {}): Task => slot(s, 2, { createdAt: NOW - 20_000, ...over });

function summary(d: UpdateDecision) {
  return {
    status: d.state.status,
    create: d.plan.create.map((c) => `${c.slot ?? c.nodeId}<${c.replaces}`),
    stop: d.plan.stop.map((s) => s.taskId),
    followUps: d.plan.followUps.map((f) => f.atMs),
    rollback: d.rollbackTo !== undefined,
  };
}

interface Case {
  readonly name: string;
  readonly spec: ServiceSpec;
  readonly prev?: ServiceSpec;
  readonly tasks: Task[];
  readonly nodes?: NodeInfo[];
  readonly state?: Partial<UpdateState>;
  readonly expect: Partial<ReturnType<typeof summary>>;
}

const cases: Case[] = [
  { name: "stop-first, one at a time", spec: v2(), tasks: oldAll(), expect: { status: "updating", create: ["1<v1s1"], stop: ["v1s1"] } },
  {
    name: "parallelism 2",
    spec: v2({ parallelism: 2 }),
    tasks: oldAll(),
    expect: { create: ["1<v1s1", "2<v1s2"], stop: ["v1s1", "v1s2"] },
  },
  {
    name: "parallelism 0 replaces all at once",
    spec: v2({ parallelism: 0 }),
    tasks: oldAll(),
    expect: { create: ["1<v1s1", "2<v1s2", "3<v1s3", "4<v1s4"] },
  },
  {
    name: "start-first creates without stopping",
    spec: v2({ order: "start-first", parallelism: 2 }),
    tasks: oldAll(),
    expect: { create: ["1<v1s1", "2<v1s2"], stop: [] },
  },
  {
    name: "tasks that are not running yet go first",
    spec: v2(),
    tasks: [slot(1, 1), slot(2, 1), slot(3, 1, { state: "PENDING" }), slot(4, 1)],
    expect: { create: ["3<v1s3-PENDING"] },
  },
  {
    name: "waits while the batch is not running",
    spec: v2({ parallelism: 2 }),
    tasks: [newer(1, { state: "STARTING" }), slot(2, 1), slot(3, 1), slot(4, 1)],
    state: { lastBatchAt: NOW - 20_000 },
    expect: { create: [], stop: [], followUps: [] },
  },
  {
    name: "start-first overlap is in flight until the new task runs",
    spec: v2({ order: "start-first" }),
    tasks: [slot(1, 1), newer(1, { state: "PENDING" }), slot(2, 1)],
    state: { lastBatchAt: NOW - 20_000 },
    expect: { create: [] },
  },
  {
    name: "delay between batches: a follow-up",
    spec: v2({ delayMs: 5_000 }),
    tasks: [newer(1, { startedAt: NOW - 1_000 }), slot(2, 1), slot(3, 1), slot(4, 1)],
    state: { lastBatchAt: NOW - 20_000 },
    expect: { create: [], followUps: [NOW + 4_000] },
  },
  {
    name: "next batch once the delay has passed",
    spec: v2({ delayMs: 5_000 }),
    tasks: [newer(1, { startedAt: NOW - 6_000 }), slot(2, 1), slot(3, 1), slot(4, 1)],
    state: { lastBatchAt: NOW - 20_000 },
    expect: { create: ["2<v1s2"] },
  },
  {
    name: "a failure within the monitor period pauses",
    spec: v2(),
    tasks: [newer(1, { state: "FAILED", startedAt: NOW - 3_000, finishedAt: NOW - 1_000 }), slot(2, 1), slot(3, 1), slot(4, 1)],
    expect: { status: "paused", create: [], stop: [] },
  },
  {
    name: "a task that never started failed within its monitor period",
    spec: v2(),
    tasks: [newer(1, { state: "REJECTED", finishedAt: NOW - 1_000 }), slot(2, 1)],
    expect: { status: "paused" },
  },
  {
    name: "a failure after the monitor period does not count",
    spec: v2(),
    tasks: [newer(1, { state: "FAILED", startedAt: NOW - 20_000, finishedAt: NOW - 1_000 }), slot(2, 1), slot(3, 1), slot(4, 1)],
    expect: { status: "updating", create: ["2<v1s2"] },
  },
  {
    name: "failures of tasks from before the update do not count",
    spec: v2(),
    tasks: [newer(1, { state: "FAILED", createdAt: STARTED - 5, finishedAt: NOW - 1_000 }), slot(2, 1)],
    expect: { status: "updating" },
  },
  {
    name: "failures under the max failure ratio are tolerated",
    spec: v2({ maxFailureRatio: 0.25 }),
    tasks: [newer(1, { state: "FAILED", finishedAt: NOW - 1_000 }), slot(2, 1), slot(3, 1), slot(4, 1)],
    expect: { status: "updating", create: ["2<v1s2"] },
  },
  {
    name: "failure action continue carries on",
    spec: v2({ failureAction: "continue" }),
    tasks: [newer(1, { state: "FAILED", finishedAt: NOW - 1_000 }), slot(2, 1), slot(3, 1), slot(4, 1)],
    expect: { status: "updating", create: ["2<v1s2"] },
  },
  {
    name: "failure action rollback hands back the previous spec",
    spec: v2({ failureAction: "rollback" }),
    prev: v1,
    tasks: [newer(1, { state: "FAILED", finishedAt: NOW - 1_000 }), slot(2, 1)],
    expect: { status: "paused", create: [], rollback: true },
  },
  {
    name: "failure action rollback without a previous spec pauses",
    spec: v2({ failureAction: "rollback" }),
    tasks: [newer(1, { state: "FAILED", finishedAt: NOW - 1_000 }), slot(2, 1)],
    expect: { status: "paused", rollback: false },
  },
  {
    name: "monitors the last batch before completing",
    spec: v2(),
    tasks: [newer(1, { startedAt: NOW - 9_000 }), newer(2, { startedAt: NOW - 1_000 })],
    expect: { status: "updating", create: [], followUps: [NOW + 4_000] },
  },
  {
    name: "completes when every task is current and monitored",
    spec: v2(),
    tasks: [newer(1, { startedAt: NOW - 9_000 }), newer(2, { startedAt: NOW - 6_000 })],
    expect: { status: "completed", create: [], followUps: [] },
  },
  {
    name: "leaves tasks on down or drained nodes to the orchestrator",
    spec: v2({ parallelism: 0 }),
    tasks: oldAll(3),
    nodes: [makeNode("n1", { status: "down" }), makeNode("n2", { availability: "drain" }), makeNode("n3")],
    expect: { create: ["3<v1s3"] },
  },
  {
    name: "a paused update does nothing",
    spec: v2(),
    tasks: oldAll(),
    state: { status: "paused" },
    expect: { status: "paused", create: [], stop: [] },
  },
  {
    name: "tasks of equivalent versions are not replaced",
    spec: v2({ parallelism: 0 }),
    tasks: [slot(1, 1), slot(2, 5)],
    state: { equivalentVersions: [5] },
    expect: { create: ["1<v1s1"] },
  },
];

describe("planUpdate", () => {
  it.each(cases)("$name", (c) => {
    const state: UpdateState = { ...startUpdate(2, STARTED), ...c.state };
    const d = planUpdate(c.spec, c.prev, c.tasks, c.nodes ?? makeNodes(4), state, NOW);
    const s = summary(d);
    for (const [k, v] of Object.entries(c.expect)) expect(s[k as keyof typeof s], k).toEqual(v);
  });

  it("stamps replacements with the target version, slot and the task they replace", () => {
    const d = planUpdate(v2(), v1, oldAll(1), makeNodes(1), startUpdate(2, STARTED), NOW);
    expect(d.plan.create).toEqual([
      {
        serviceId: "svc",
        slot: 1,
        specVersion: 2,
        state: "NEW",
        desiredState: "running",
        reason: "update",
        message: "update from version 1 to 2",
        replaces: "v1s1",
      },
    ]);
    expect(d.state).toMatchObject({ lastBatchAt: NOW, message: "updating: 0/4 tasks" });
  });

  it("remembers failures after the failed task left the history", () => {
    const failed = newer(1, { state: "FAILED", finishedAt: NOW - 1_000 });
    const first = planUpdate(
      v2({ maxFailureRatio: 0.3 }),
      v1,
      [failed, slot(2, 1), slot(3, 1), slot(4, 1)],
      makeNodes(4),
      startUpdate(2, STARTED),
      NOW,
    );
    expect(first.state.failedTaskIds).toEqual([failed.id]);
    const again = newer(2, { id: "v2s2b", state: "FAILED", finishedAt: NOW });
    const second = planUpdate(v2({ maxFailureRatio: 0.3 }), v1, [again, slot(3, 1), slot(4, 1)], makeNodes(4), first.state, NOW + 1);
    expect(second.state.status).toBe("paused");
    expect(second.state.message).toBe("update paused: 2 of 4 tasks failed (max failure ratio 0.3)");
  });

  it("rolls back with the abandoned spec's rollback config", () => {
    const abandoned = v2({ parallelism: 1 });
    const withRollback: ServiceSpec = { ...abandoned, rollbackConfig: cfg({ parallelism: 3 }) };
    const back: ServiceSpec = { ...v1, updateConfig: cfg({ parallelism: 1 }) };
    const tasks = [newer(1), newer(2), newer(3), newer(4)];
    const d = planUpdate(
      back,
      withRollback,
      tasks,
      makeNodes(4),
      startUpdate(3, STARTED, { rollback: true, equivalentVersions: [1] }),
      NOW,
    );
    expect(d.plan.create.map((c) => c.slot)).toEqual([1, 2, 3]);
    expect(d.plan.create[0]).toMatchObject({ specVersion: 3, message: "rollback from version 2 to 3" });
    expect(d.state.message).toBe("rolling back: 0/4 tasks");
  });

  it("finishes a rollback as rollback-completed", () => {
    const d = planUpdate(
      v1,
      v2(),
      [slot(1, 1, { startedAt: NOW - 60_000 })],
      makeNodes(1),
      startUpdate(3, STARTED, { rollback: true, equivalentVersions: [1] }),
      NOW,
    );
    expect(d.state.status).toBe("rollback-completed");
    expect(isUpdateActive(d.state)).toBe(false);
  });

  it("global: replaces per node, skipping nodes that cannot take the replacement", () => {
    const spec = makeSpec({ mode: { kind: "global" }, image: "app:2", updateConfig: cfg({ parallelism: 0 }) });
    const tasks = ["n1", "n2", "n3"].map((n) => makeTask(`t-${n}`, { nodeId: n, specVersion: 1 }));
    const nodes = [makeNode("n1"), makeNode("n2", { availability: "pause" }), makeNode("n3", { status: "unknown" })];
    const d = planUpdate(spec, undefined, tasks, nodes, startUpdate(2, STARTED), NOW);
    expect(summary(d).create).toEqual(["n1<t-n1"]);
  });
});
