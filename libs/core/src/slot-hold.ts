// Stop-first, as swarmkit does it: a task created for a slot (or a global service's node) whose
// previous task is still being stopped is held unscheduled until that task has ended. The
// replacement row exists at once (the update planner and the orchestrator count it, so they
// neither plan the slot again nor start the next batch), but it is never ASSIGNED, so no node
// runs two containers for one slot. Start-first is untouched: its old task stays desired
// `running` until the new one runs, and only desired-`shutdown` tasks hold a slot.
import { nodeProblem } from "./orchestrator";
import { STOPPABLE_TASK_STATES, type NodeInfo, type Task } from "./types";

const STOPPABLE: ReadonlySet<Task["state"]> = new Set(STOPPABLE_TASK_STATES);

function sameIdentity(a: Task, b: Task): boolean {
  if (a.serviceId !== b.serviceId) return false;
  if (a.slot !== undefined || b.slot !== undefined) return a.slot === b.slot;
  return a.nodeId !== undefined && a.nodeId === b.nodeId;
}

/**
 * The task `t` must wait for, if any: another task of its slot (or node, in global mode) that
 * was asked to stop and may still have a container on a node that answers. A task on a down or
 * vanished node holds nothing (no agent will report its end; it is ORPHANED), nor does one that
 * never reached a node (NEW, PENDING: it ends at once).
 */
export function heldBy(t: Task, tasks: readonly Task[], nodesById: ReadonlyMap<string, NodeInfo>): Task | undefined {
  for (const o of tasks) {
    if (o.id === t.id || o.desiredState !== "shutdown" || !STOPPABLE.has(o.state) || !sameIdentity(o, t)) continue;
    if (o.nodeId === undefined || nodeProblem(o.nodeId, nodesById)?.orphan) continue;
    return o;
  }
  return undefined;
}

const HELD = "waiting for task ";

/** What a held task's message says while it waits. */
export function heldMessage(by: Pick<Task, "id">): string {
  return `${HELD}${by.id} to stop`;
}

/** Whether a pending task's message says it is held (it will be placed by itself, not stuck). */
export function isHeldMessage(message: string | null | undefined): boolean {
  return !!message?.startsWith(HELD);
}
