// A small world for rollout tests: reconciles written as the reconcile repository writes them,
// and agents that start what was assigned and stop what was asked to stop, at any pace.
import { expect } from "vitest";
import { decideReconcile, stopOutcome, STOPPABLE_TASK_STATES, type NodeInfo, type ServiceSpec, type Task, type UpdateState } from "../src";

export const ON_NODE: ReadonlySet<string> = new Set(STOPPABLE_TASK_STATES);

export interface World {
  tasks: Task[];
  update?: UpdateState;
  now: number;
}

export function reconcileOnce(
  w: World,
  spec: ServiceSpec,
  prev: ServiceSpec,
  nodes: readonly NodeInfo[],
  ids: () => string,
  taskVersion = 2,
): void {
  const d = decideReconcile({
    serviceId: "svc",
    spec,
    taskVersion,
    previousSpec: prev,
    ...(w.update ? { update: w.update } : {}),
    tasks: w.tasks,
    nodes,
    others: new Map(),
    specs: new Map([["svc", spec]]),
    now: w.now,
    newId: ids,
  });
  if (d.kind !== "write") return;
  // What the reconcile repository writes: stops (at once when nothing runs yet), inserts, placements.
  const stops = new Map(d.result.plan.stop.map((s) => [s.taskId, s]));
  const assigned = new Map(d.placed.assignments.map((a) => [a.taskId, a.nodeId]));
  const fresh = new Set(d.result.newTasks.map((t) => t.id));
  w.tasks = w.tasks.map((t): Task => {
    const s = stops.get(t.id);
    if (s) {
      const to = stopOutcome(s, t.state);
      return { ...t, desiredState: "shutdown", ...(to ? { state: to, finishedAt: w.now } : {}) };
    }
    const node = assigned.get(t.id);
    return node && (t.state === "NEW" || t.state === "PENDING") ? { ...t, state: "ASSIGNED", nodeId: node } : t;
  });
  for (const t of d.result.newTasks) {
    const node = assigned.get(t.id);
    w.tasks.push({ ...t, state: node ? "ASSIGNED" : "PENDING", ...(node ? { nodeId: node } : {}) });
  }
  expect(fresh.size).toBe(d.result.newTasks.length);
  w.update = d.result.update;
}

/** Agents act on some tasks: start what was assigned, stop what was asked to stop. */
export function agentsAct(w: World, pick: () => boolean): void {
  w.tasks = w.tasks.map((t): Task => {
    if (!pick()) return t;
    if (t.desiredState === "running" && t.state === "ASSIGNED") return { ...t, state: "RUNNING", startedAt: w.now, updatedAt: w.now };
    if (t.desiredState === "shutdown" && ON_NODE.has(t.state)) return { ...t, state: "SHUTDOWN", finishedAt: w.now, updatedAt: w.now };
    return t;
  });
}
