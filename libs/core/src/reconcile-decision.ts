// One reconcile's whole decision for one service: what the orchestrator and the update planner
// want (reconcileService), a rollback when the update's failure action asks for one, where the
// pending tasks go (schedule), and whether anything at all is to be written. The worker only
// loads the inputs and writes the result.
import { isTerminal, isLive } from "./task-state";
import { EMPTY_PLAN, nextFollowUp, type FollowUp, type StopTask } from "./plan";
import { reconcileService, type ReconcileResult } from "./reconcile";
import { schedule, type ScheduleResult, type SpecsByService, type UnassignedTask } from "./scheduler";
import { heldMessage, slotHolds } from "./slot-hold";
import { withRebalanceMoves } from "./rebalance";
import type { LiveCounts } from "./scheduler-filters";
import type { NodeInfo, ServiceSpec, Task, TaskState } from "./types";
import { startUpdate, type UpdateState } from "./update-planner";

export interface ReconcileDecisionInput {
  readonly serviceId: string;
  readonly spec: ServiceSpec;
  readonly taskVersion: number;
  readonly previousSpec?: ServiceSpec;
  readonly update?: UpdateState;
  /** The service's tasks as read, with their stored `message`. */
  readonly tasks: readonly Task[];
  readonly nodes: readonly NodeInfo[];
  /**
   * Other services' live tasks, counted per node and service. Absent when not read: a decision
   * that has something to place then answers `needs-counts`, and is to be made again with them.
   * Counting every task of the cluster is most of what a reconcile reads, and a service that
   * only needs checking (the sweep's, a converged one) places nothing.
   */
  readonly others?: LiveCounts;
  /** Specs of this service and of those counted in `others`. */
  readonly specs: SpecsByService;
  readonly now: number;
  readonly newId: () => string;
}

/** A rollback the update's failure action asked for: installed as a new task version. */
export interface RollbackDecision {
  readonly spec: ServiceSpec;
  readonly update: UpdateState;
}

export type ReconcileDecision =
  | { readonly kind: "needs-counts" }
  | { readonly kind: "unchanged"; readonly followUp?: FollowUp; readonly pending: number }
  | {
      readonly kind: "write";
      readonly result: ReconcileResult;
      readonly placed: ScheduleResult;
      readonly rollback?: RollbackDecision;
      readonly followUp?: FollowUp;
    };

export function decideReconcile(i: ReconcileDecisionInput): ReconcileDecision {
  // A rebalance picks the tasks it moves from the world as it is when it starts.
  const rebalancing = i.update?.rebalance === true && i.update.targetVersion === i.taskVersion;
  if (rebalancing && !i.others) return { kind: "needs-counts" };
  const update =
    i.update && rebalancing && i.others
      ? withRebalanceMoves(i.update, {
          serviceId: i.serviceId,
          tasks: i.tasks,
          nodes: i.nodes,
          others: i.others,
          specs: i.specs,
          now: i.now,
        })
      : i.update;
  let r = reconcileService({
    serviceId: i.serviceId,
    spec: i.spec,
    version: i.taskVersion,
    ...(i.previousSpec ? { previousSpec: i.previousSpec } : {}),
    tasks: i.tasks,
    nodes: i.nodes,
    ...(update ? { update } : {}),
    now: i.now,
    newId: i.newId,
  });
  // Rather than write tasks for the version being abandoned, install the rollback's spec as a new
  // version; the next reconcile plans from it.
  let rollback: RollbackDecision | undefined;
  if (r.rollbackTo) {
    rollback = {
      spec: r.rollbackTo,
      update: startUpdate(i.taskVersion + 1, i.now, { rollback: true, equivalentVersions: [i.taskVersion - 1] }),
    };
    r = { plan: EMPTY_PLAN, newTasks: [], tasks: r.tasks };
  }
  const pending = r.tasks.filter((t) => isLive(t) && (t.state === "NEW" || t.state === "PENDING"));
  // Stop-first: a replacement waits, unscheduled, until its slot's previous task has stopped.
  const nodesById = new Map(i.nodes.map((n) => [n.id, n]));
  const held: UnassignedTask[] = [];
  const holder = slotHolds(r.tasks, nodesById);
  const free = pending.filter((t) => {
    const by = holder(t);
    if (by) held.push({ taskId: t.id, reason: heldMessage(by), counts: {} });
    return !by;
  });
  // Nothing to place (a converged service, a reconcile that only stops): no node accounting to
  // build, which at 5,000 nodes was most of a reconcile that found nothing to do.
  const placing = !rollback && free.length > 0;
  if (placing && !i.others) return { kind: "needs-counts" };
  const scheduled: ScheduleResult =
    !placing || !i.others
      ? { assignments: [], unassigned: [] }
      : schedule(
          free.map((t) => ({ id: t.id, serviceId: i.serviceId, ...(t.nodeId ? { nodeId: t.nodeId } : {}) })),
          i.nodes,
          r.tasks,
          i.specs,
          { now: i.now, liveCounts: i.others },
        );
  const placed: ScheduleResult = rollback ? scheduled : { ...scheduled, unassigned: [...held, ...scheduled.unassigned] };
  const followUp = nextFollowUp(r.plan);
  const byId = new Map(i.tasks.map((t) => [t.id, t]));
  const unchanged =
    !rollback &&
    r.plan.create.length === 0 &&
    r.plan.stop.length === 0 &&
    placed.assignments.length === 0 &&
    placed.unassigned.every((u) => byId.get(u.taskId)?.message === u.reason) &&
    JSON.stringify(r.update ?? null) === JSON.stringify(i.update ?? null);
  // A wait still under way (restart delay, monitor period) keeps its follow-up even when nothing
  // else changed, or an update would sit "monitoring" until the next sweep.
  if (unchanged) return { kind: "unchanged", pending: placed.unassigned.length, ...(followUp ? { followUp } : {}) };
  return { kind: "write", result: r, placed, ...(rollback ? { rollback } : {}), ...(followUp ? { followUp } : {}) };
}

/**
 * Where a stop leaves a task at once, or null when its agent must stop it first: a lost task
 * (orphan) ends ORPHANED, one that never reached an agent ends SHUTDOWN.
 */
export function stopOutcome(stop: Pick<StopTask, "orphan">, state: TaskState): TaskState | null {
  if (stop.orphan && !isTerminal(state)) return "ORPHANED";
  if (state === "NEW" || state === "PENDING") return "SHUTDOWN";
  return null;
}
