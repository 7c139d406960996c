import { describe, expect, it } from "vitest";
import { applyPlan, orchestrate, type NodeInfo, type Plan, type ServiceSpec, type Task } from "../src";
import { makeNode, makeNodes, makeSpec, makeTask, NOW, replicated } from "./fixtures";

/** A plan in a form that is easy to read in a table. */
function summary(p: Plan): { create: string[]; stop: string[]; update: string[]; followUps: number[] } {
  return {
    create: p.create.map((c) => `${c.slot ?? c.nodeId}:${c.reason}${c.replaces ? `<${c.replaces}` : ""}`),
    stop: p.stop.map((s) => `${s.taskId}:${s.reason}${s.orphan ? ":orphan" : ""}`),
    update: p.update.map((u) => u.taskId),
    followUps: p.followUps.map((f) => f.atMs),
  };
}

interface Case {
  readonly name: string;
  readonly spec: ServiceSpec;
  readonly version?: number;
  readonly equivalentVersions?: number[];
  readonly tasks: Task[];
  readonly nodes: NodeInfo[];
  readonly expect: Partial<ReturnType<typeof summary>>;
}

const nodes3 = makeNodes(3);
const on = (id: string, slot: number, nodeId: string, over: Partial<Task> = {}): Task => makeTask(id, { slot, nodeId, ...over });
const failedAt = (id: string, slot: number, endedAgoMs: number, over: Partial<Task> = {}): Task =>
  makeTask(id, { slot, nodeId: "n1", state: "FAILED", exitCode: 1, finishedAt: NOW - endedAgoMs, updatedAt: NOW - endedAgoMs, ...over });
const restart = (p: Partial<ServiceSpec["restartPolicy"]>) => ({
  restartPolicy: { condition: "any" as const, delayMs: 0, maxAttempts: 0, windowMs: 0, ...p },
});

const replicatedCases: Case[] = [
  {
    name: "new service: slots 1..N",
    spec: replicated(3),
    tasks: [],
    nodes: nodes3,
    expect: { create: ["1:scale-up", "2:scale-up", "3:scale-up"], stop: [] },
  },
  {
    name: "steady state: nothing to do",
    spec: replicated(2),
    tasks: [on("a", 1, "n1"), on("b", 2, "n2")],
    nodes: nodes3,
    expect: { create: [], stop: [], update: [], followUps: [] },
  },
  {
    name: "pending and starting tasks fill their slots",
    spec: replicated(2),
    tasks: [makeTask("a", { slot: 1, state: "PENDING" }), on("b", 2, "n2", { state: "STARTING" })],
    nodes: nodes3,
    expect: { create: [], stop: [] },
  },
  {
    name: "scale up fills the lowest free slots",
    spec: replicated(4),
    tasks: [on("a", 1, "n1"), on("c", 3, "n2")],
    nodes: nodes3,
    expect: { create: ["2:scale-up", "4:scale-up"], stop: [] },
  },
  {
    name: "scale down: not-running first, then the node with the most replicas, highest slot first",
    spec: replicated(2),
    tasks: [on("a", 1, "n1"), on("b", 2, "n1"), on("c", 3, "n2"), makeTask("d", { slot: 4, state: "PENDING" }), on("e", 5, "n1")],
    nodes: nodes3,
    expect: { create: [], stop: ["d:scale-down", "e:scale-down", "b:scale-down"] },
  },
  {
    name: "scale down evens out nodes (ties: highest slot) before touching the lone replica",
    spec: replicated(3),
    tasks: [on("a", 1, "n1"), on("b", 2, "n1"), on("c", 3, "n1"), on("d", 4, "n2"), on("e", 5, "n2"), on("f", 6, "n3")],
    nodes: nodes3,
    expect: { stop: ["c:scale-down", "e:scale-down", "b:scale-down"] },
  },
  {
    name: "scale to zero stops everything",
    spec: replicated(0),
    tasks: [on("a", 1, "n1"), on("b", 2, "n2")],
    nodes: nodes3,
    expect: { create: [], stop: ["b:scale-down", "a:scale-down"] },
  },
  {
    name: "scale down removes a dead slot first and retires its task",
    spec: replicated(2, restart({ condition: "none" })),
    tasks: [on("a", 1, "n1"), makeTask("b", { slot: 2, nodeId: "n2", state: "COMPLETE", exitCode: 0 }), on("c", 3, "n3")],
    nodes: nodes3,
    expect: { create: [], stop: ["b:scale-down"] },
  },
  {
    name: "task on a down node is orphaned and replaced in its slot",
    spec: replicated(2),
    tasks: [on("a", 1, "n1"), on("b", 2, "n2")],
    nodes: [makeNode("n1"), makeNode("n2", { status: "down" })],
    expect: { create: ["2:reschedule<b"], stop: ["b:node-down:orphan"] },
  },
  {
    name: "task on a drained node is shut down and replaced",
    spec: replicated(1),
    tasks: [on("a", 1, "n1")],
    nodes: [makeNode("n1", { availability: "drain" }), makeNode("n2")],
    expect: { create: ["1:reschedule<a"], stop: ["a:node-drained"] },
  },
  {
    name: "task on a node that left the cluster is orphaned and replaced",
    spec: replicated(1),
    tasks: [on("a", 1, "gone")],
    nodes: nodes3,
    expect: { create: ["1:reschedule<a"], stop: ["a:node-gone:orphan"] },
  },
  {
    name: "paused and unknown nodes keep their tasks",
    spec: replicated(2),
    tasks: [on("a", 1, "n1"), on("b", 2, "n2")],
    nodes: [makeNode("n1", { availability: "pause" }), makeNode("n2", { status: "unknown" })],
    expect: { create: [], stop: [] },
  },
  {
    name: "node loss is replaced at once even under restart condition none",
    spec: replicated(1, restart({ condition: "none", delayMs: 60_000 })),
    tasks: [on("a", 1, "n2")],
    nodes: [makeNode("n1"), makeNode("n2", { status: "down" })],
    expect: { create: ["1:reschedule<a"], followUps: [] },
  },
  {
    name: "a task the worker already marked ORPHANED is replaced at once",
    spec: replicated(1, restart({ condition: "none", delayMs: 60_000 })),
    tasks: [makeTask("a", { slot: 1, nodeId: "n2", state: "ORPHANED", finishedAt: NOW - 10 })],
    nodes: nodes3,
    expect: { create: ["1:scale-up"], followUps: [] },
  },
  {
    name: "restart delay: a follow-up instead of an immediate create",
    spec: replicated(1, restart({ delayMs: 5_000 })),
    tasks: [failedAt("a", 1, 1_000)],
    nodes: nodes3,
    expect: { create: [], followUps: [NOW + 4_000] },
  },
  {
    name: "restart once the delay has passed",
    spec: replicated(1, restart({ delayMs: 5_000 })),
    tasks: [failedAt("a", 1, 6_000)],
    nodes: nodes3,
    expect: { create: ["1:restart"], followUps: [] },
  },
  {
    name: "restart condition none: a completed slot stays done",
    spec: replicated(2, restart({ condition: "none" })),
    tasks: [on("a", 1, "n1"), failedAt("b", 2, 10)],
    nodes: nodes3,
    expect: { create: [], stop: [], followUps: [] },
  },
  {
    name: "on-failure: a clean exit is not restarted",
    spec: replicated(1, restart({ condition: "on-failure" })),
    tasks: [failedAt("a", 1, 10, { state: "COMPLETE", exitCode: 0 })],
    nodes: nodes3,
    expect: { create: [] },
  },
  {
    name: "on-failure: a failure is restarted",
    spec: replicated(1, restart({ condition: "on-failure" })),
    tasks: [failedAt("a", 1, 10)],
    nodes: nodes3,
    expect: { create: ["1:restart"] },
  },
  {
    name: "any: a clean exit is restarted",
    spec: replicated(1, restart({ condition: "any" })),
    tasks: [failedAt("a", 1, 10, { state: "COMPLETE", exitCode: 0 })],
    nodes: nodes3,
    expect: { create: ["1:restart"] },
  },
  {
    name: "max attempts: 2 exits allow the 2nd restart",
    spec: replicated(1, restart({ maxAttempts: 2 })),
    tasks: [failedAt("a", 1, 300), failedAt("b", 1, 100)],
    nodes: nodes3,
    expect: { create: ["1:restart"] },
  },
  {
    name: "max attempts: 3 exits and the slot gives up for good",
    spec: replicated(1, restart({ maxAttempts: 2 })),
    tasks: [failedAt("a", 1, 300), failedAt("b", 1, 200), failedAt("c", 1, 100)],
    nodes: nodes3,
    expect: { create: [], followUps: [] },
  },
  {
    name: "max attempts within a window: exits older than the window do not count",
    spec: replicated(1, restart({ maxAttempts: 2, windowMs: 10_000 })),
    tasks: [failedAt("a", 1, 20_000), failedAt("b", 1, 200), failedAt("c", 1, 100)],
    nodes: nodes3,
    expect: { create: ["1:restart"] },
  },
  {
    name: "max attempts within a window: try again when the oldest exit leaves it",
    spec: replicated(1, restart({ maxAttempts: 2, windowMs: 10_000 })),
    tasks: [failedAt("a", 1, 3_000), failedAt("b", 1, 200), failedAt("c", 1, 100)],
    nodes: nodes3,
    expect: { create: [], followUps: [NOW + 7_000] },
  },
  {
    name: "exits of an older spec version do not use up attempts",
    spec: replicated(1, restart({ maxAttempts: 1 })),
    version: 2,
    tasks: [failedAt("a", 1, 300), failedAt("b", 1, 200), failedAt("c", 1, 100, { specVersion: 2 })],
    nodes: nodes3,
    expect: { create: ["1:restart"] },
  },
  {
    name: "tasks we stopped are not failures: the slot is refilled at once",
    spec: replicated(1, restart({ condition: "none", delayMs: 60_000 })),
    tasks: [failedAt("a", 1, 10, { desiredState: "shutdown", state: "SHUTDOWN" }), failedAt("b", 1, 5, { slot: 1 })],
    nodes: nodes3,
    expect: { create: [] },
  },
  {
    name: "duplicates in a slot: keep the most advanced",
    spec: replicated(1),
    tasks: [on("a", 1, "n1", { state: "STARTING" }), on("b", 1, "n2"), makeTask("c", { slot: 1, state: "PENDING" })],
    nodes: nodes3,
    expect: { create: [], stop: ["a:duplicate", "c:duplicate"] },
  },
  {
    name: "start-first overlap: old keeps running while the new one starts",
    spec: replicated(1),
    version: 2,
    tasks: [on("old", 1, "n1"), on("new", 1, "n2", { specVersion: 2, state: "STARTING" })],
    nodes: nodes3,
    expect: { create: [], stop: [], update: [] },
  },
  {
    name: "start-first overlap ends when the new task runs",
    spec: replicated(1),
    version: 2,
    tasks: [on("old", 1, "n1"), on("new", 1, "n2", { specVersion: 2 })],
    nodes: nodes3,
    expect: { create: [], stop: ["old:superseded"], update: [] },
  },
  {
    name: "out-of-date tasks are listed for the update planner, not replaced",
    spec: replicated(2),
    version: 3,
    tasks: [on("a", 1, "n1", { specVersion: 2 }), on("b", 2, "n2", { specVersion: 3 })],
    nodes: nodes3,
    expect: { create: [], stop: [], update: ["a"] },
  },
  {
    name: "equivalent versions are up to date (after a rollback)",
    spec: replicated(1),
    version: 3,
    equivalentVersions: [1],
    tasks: [on("a", 1, "n1", { specVersion: 1 })],
    nodes: nodes3,
    expect: { update: [] },
  },
  {
    name: "other services' tasks are never touched",
    spec: replicated(1),
    tasks: [on("a", 1, "n1"), on("x", 2, "n1", { serviceId: "other" }), on("y", 1, "n9", { serviceId: "other" })],
    nodes: nodes3,
    expect: { create: [], stop: [] },
  },
  {
    name: "current task on a node that lost its label is replaced",
    spec: replicated(1, { placement: { constraints: ["node.labels.zone==a"] } }),
    tasks: [on("a", 1, "n1")],
    nodes: [makeNode("n1", { labels: { zone: "b" } }), makeNode("n2", { labels: { zone: "a" } })],
    expect: { create: ["1:reschedule<a"], stop: ["a:constraints"] },
  },
  {
    name: "old-version task that breaks new constraints waits for the update",
    spec: replicated(1, { placement: { constraints: ["node.labels.zone==a"] } }),
    version: 2,
    tasks: [on("a", 1, "n1")],
    nodes: [makeNode("n1", { labels: { zone: "b" } })],
    expect: { create: [], stop: [], update: ["a"] },
  },
  {
    name: "tasks without a slot belong to another mode and are stopped",
    spec: replicated(1),
    tasks: [makeTask("g", { nodeId: "n1" })],
    nodes: nodes3,
    expect: { create: ["1:scale-up"], stop: ["g:mode-changed"] },
  },
];

const global = makeSpec({ mode: { kind: "global" } });
const globalCases: Case[] = [
  {
    name: "global: one task per ready, active node",
    spec: global,
    tasks: [],
    nodes: [
      makeNode("n1"),
      makeNode("n2"),
      makeNode("n3", { availability: "pause" }),
      makeNode("n4", { status: "unknown" }),
      makeNode("n5", { status: "down" }),
      makeNode("n6", { availability: "drain" }),
    ],
    expect: { create: ["n1:new-node", "n2:new-node"] },
  },
  {
    name: "global: drained and down nodes lose their tasks, paused ones keep them",
    spec: global,
    tasks: [
      makeTask("a", { nodeId: "n1" }),
      makeTask("b", { nodeId: "n2" }),
      makeTask("c", { nodeId: "n3" }),
      makeTask("d", { nodeId: "n4" }),
    ],
    nodes: [
      makeNode("n1", { availability: "drain" }),
      makeNode("n2", { status: "down" }),
      makeNode("n3", { availability: "pause" }),
      makeNode("n4"),
    ],
    expect: { create: [], stop: ["a:node-drained", "b:node-down:orphan"] },
  },
  {
    name: "global: a node that left the cluster orphans its task",
    spec: global,
    tasks: [makeTask("a", { nodeId: "gone" }), makeTask("b", { nodeId: "n1" })],
    nodes: [makeNode("n1")],
    expect: { create: [], stop: ["a:node-gone:orphan"] },
  },
  {
    name: "global: a new node gets a task",
    spec: global,
    tasks: [makeTask("a", { nodeId: "n1" })],
    nodes: [makeNode("n1"), makeNode("n2")],
    expect: { create: ["n2:new-node"], stop: [] },
  },
  {
    name: "global: constraints pick the nodes, and a node that stops matching loses its task",
    spec: makeSpec({ mode: { kind: "global" }, placement: { constraints: ["node.labels.gpu==yes"] } }),
    version: 2,
    tasks: [makeTask("a", { nodeId: "n1" })],
    nodes: [makeNode("n1"), makeNode("n2", { labels: { gpu: "yes" } })],
    expect: { create: ["n2:new-node"], stop: ["a:constraints"] },
  },
  {
    name: "global: restart delay per node",
    spec: makeSpec({ mode: { kind: "global" }, ...restart({ delayMs: 5_000 }) }),
    tasks: [
      makeTask("a", { nodeId: "n1", state: "FAILED", finishedAt: NOW - 1_000 }),
      makeTask("b", { nodeId: "n2", state: "FAILED", finishedAt: NOW - 9_000 }),
    ],
    nodes: [makeNode("n1"), makeNode("n2")],
    expect: { create: ["n2:restart"], followUps: [NOW + 4_000] },
  },
  {
    name: "global: a drained-then-reactivated node gets a task again at once",
    spec: makeSpec({ mode: { kind: "global" }, ...restart({ delayMs: 60_000 }) }),
    tasks: [makeTask("a", { nodeId: "n1", state: "SHUTDOWN", desiredState: "shutdown", finishedAt: NOW - 10 })],
    nodes: [makeNode("n1")],
    expect: { create: ["n1:new-node"], followUps: [] },
  },
  {
    name: "global: duplicates on a node",
    spec: global,
    tasks: [makeTask("a", { nodeId: "n1", state: "PENDING" }), makeTask("b", { nodeId: "n1" })],
    nodes: [makeNode("n1")],
    expect: { create: [], stop: ["a:duplicate"] },
  },
  {
    name: "global: tasks with a slot belong to replicated mode and are stopped",
    spec: global,
    tasks: [makeTask("r", { slot: 1, nodeId: "n1" })],
    nodes: [makeNode("n1")],
    expect: { create: ["n1:new-node"], stop: ["r:mode-changed"] },
  },
];

describe("orchestrate", () => {
  it.each([...replicatedCases, ...globalCases])("$name", (c) => {
    const plan = orchestrate(c.spec, c.version ?? 1, c.tasks, c.nodes, {
      now: NOW,
      serviceId: "svc",
      ...(c.equivalentVersions ? { equivalentVersions: c.equivalentVersions } : {}),
    });
    const s = summary(plan);
    for (const [k, v] of Object.entries(c.expect)) expect(s[k as keyof typeof s], k).toEqual(v);
  });

  it("stamps new tasks with the service, version and desired state", () => {
    const plan = orchestrate(replicated(1), 7, [], [], { now: NOW, serviceId: "svc-7" });
    expect(plan.create).toEqual([
      { serviceId: "svc-7", slot: 1, specVersion: 7, state: "NEW", desiredState: "running", reason: "scale-up", message: "scaled up to 1" },
    ]);
  });

  it("a slot removed by scale-down stays removed: scaling back up starts a fresh task", () => {
    const spec = replicated(2, restart({ condition: "none" }));
    const tasks = [on("a", 1, "n1"), on("b", 2, "n2"), makeTask("c", { slot: 3, nodeId: "n3", state: "COMPLETE", exitCode: 0 })];
    const down = orchestrate(spec, 1, tasks, nodes3, { now: NOW, serviceId: "svc" });
    const after = applyPlan(tasks, down, { now: NOW, newId: () => "x" });
    const up = orchestrate(replicated(3, restart({ condition: "none" })), 1, after, nodes3, { now: NOW, serviceId: "svc" });
    expect(summary(up).create).toEqual(["3:scale-up"]);
  });

  it("does not mutate its inputs", () => {
    const tasks = Object.freeze([Object.freeze(on("a", 1, "n1")), Object.freeze(on("b", 2, "n2"))]);
    const nodes = Object.freeze([Object.freeze(makeNode("n1", { status: "down" })), Object.freeze(makeNode("n2"))]);
    expect(() => orchestrate(replicated(1), 1, tasks, nodes, { now: NOW, serviceId: "svc" })).not.toThrow();
  });
});
