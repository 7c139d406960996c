// Stop-first, as swarmkit does it: a task created for a slot (or a global service's node) whose
// previous task is still being stopped is held unscheduled until that task has ended. The
// replacement row exists at once (the update planner and the orchestrator count it, so they
// neither plan the slot again nor start the next batch), but it is never ASSIGNED, so no node
// runs two containers for one slot. Start-first is untouched: its old task stays desired
// `running` until the new one runs, and only desired-`shutdown` tasks hold a slot.
import { nodeProblem } from "./orchestrator";
import { STOPPABLE_TASK_STATES, type NodeInfo, type Task } from "./types";

const STOPPABLE: ReadonlySet<Task["state"]> = new Set(STOPPABLE_TASK_STATES);

/** A task's identity (its slot, or its node in global mode) within its service; none for neither. */
function identityKey(t: Task): string | undefined {
  if (t.slot !== undefined) return `${t.serviceId}\u0000s${t.slot}`;
  return t.nodeId !== undefined ? `${t.serviceId}\u0000n${t.nodeId}` : undefined;
}

/**
 * The task `t` must wait for, if any: another task of its slot (or node, in global mode) that
 * was asked to stop and may still have a container on a node that answers. A task on a down or
 * vanished node holds nothing (no agent will report its end; it is ORPHANED), nor does one that
 * never reached a node (NEW, PENDING: it ends at once).
 */
export function heldBy(t: Task, tasks: readonly Task[], nodesById: ReadonlyMap<string, NodeInfo>): Task | undefined {
  return slotHolds(tasks, nodesById)(t);
}

/**
 * `heldBy` for many tasks of one list: the stopping tasks are indexed by identity once, so a
 * reconcile that creates a whole service (5,000 new tasks) costs one pass, not one per task.
 */
export function slotHolds(tasks: readonly Task[], nodesById: ReadonlyMap<string, NodeInfo>): (t: Task) => Task | undefined {
  const holders = new Map<string, Task[]>();
  for (const o of tasks) {
    if (o.desiredState !== "shutdown" || !STOPPABLE.has(o.state)) continue;
    if (o.nodeId === undefined || nodeProblem(o.nodeId, nodesById)?.orphan) continue;
    const key = identityKey(o);
    if (key === undefined) continue;
    const list = holders.get(key);
    if (list) list.push(o);
    else holders.set(key, [o]);
  }
  return (t) => {
    const key = identityKey(t);
    return key === undefined ? undefined : holders.get(key)?.find((o) => o.id !== t.id);
  };
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
