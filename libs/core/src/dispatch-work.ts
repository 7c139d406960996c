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
