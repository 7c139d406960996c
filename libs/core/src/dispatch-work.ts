// What dispatch must do on one node, from the node's active tasks: start the tasks assigned to
// it (or taken over from a dispatcher that died mid-way), and stop those the orchestrator no
// longer wants. Every move dispatch makes is conditional on the state read here.
import { STOPPABLE_TASK_STATES, type Task } from "./types";

/** A task as dispatch reads it: with its container, if one was created. */
export interface DispatchTask {
  readonly task: Task;
  readonly containerId: string | null;
}

export interface DispatchWork {
  readonly start: readonly DispatchTask[];
  readonly stop: readonly DispatchTask[];
}

/** A claim older than this with no container means the dispatcher that took it died mid-way. */
export const STALE_CLAIM_MS = 30_000;

/** Whether a dispatcher may claim this task now (ASSIGNED, or a stale claim without a container). */
export function claimable(t: DispatchTask, now: number, staleClaimMs = STALE_CLAIM_MS): boolean {
  if (t.task.desiredState !== "running") return false;
  if (t.task.state === "ASSIGNED") return true;
  return t.task.state === "ACCEPTED" && t.containerId === null && t.task.updatedAt < now - staleClaimMs;
}

const STOPPABLE: ReadonlySet<Task["state"]> = new Set(STOPPABLE_TASK_STATES);

export function dispatchWork(tasks: readonly DispatchTask[], now: number, staleClaimMs = STALE_CLAIM_MS): DispatchWork {
  return {
    start: tasks.filter((t) => claimable(t, now, staleClaimMs)),
    stop: tasks.filter((t) => t.task.desiredState === "shutdown" && STOPPABLE.has(t.task.state)),
  };
}

/** A node a reconcile's write gave dispatch work: tasks to start there, tasks to stop there. */
export interface DispatchTarget {
  readonly nodeId: string;
  readonly start: boolean;
  readonly stop: boolean;
}

/**
 * The nodes one reconcile's write gives work, from the decision alone: where it assigned tasks
 * (start) and where tasks it stopped may still have a container (stop: ASSIGNED … RUNNING on a
 * ready node; a lost node's tasks are orphaned, not stopped). Work left open by earlier writes (an
 * agent that was away, a claim gone stale) is not repeated here: the sweep dispatches every node
 * with open work. At 5,000 nodes, asking again for every node with open work on each write was
 * thousands of queue requests per reconcile, nearly all collapsing into jobs already queued.
 */
export function dispatchTargets(
  read: readonly Task[],
  stops: readonly { readonly taskId: string }[],
  assignments: readonly { readonly taskId: string; readonly nodeId: string }[],
  readyNodeIds: ReadonlySet<string>,
): DispatchTarget[] {
  const byNode = new Map<string, { start: boolean; stop: boolean }>();
  const mark = (nodeId: string, part: "start" | "stop") => {
    if (!readyNodeIds.has(nodeId)) return;
    const t = byNode.get(nodeId) ?? { start: false, stop: false };
    t[part] = true;
    byNode.set(nodeId, t);
  };
  for (const a of assignments) mark(a.nodeId, "start");
  const byId = new Map(read.map((t) => [t.id, t]));
  for (const s of stops) {
    const t = byId.get(s.taskId);
    if (t?.nodeId !== undefined && STOPPABLE.has(t.state)) mark(t.nodeId, "stop");
  }
  return [...byNode].map(([nodeId, p]) => ({ nodeId, ...p }));
}
