// One reconcile step for one service, composed in the order that keeps the pieces from
// stepping on each other: the orchestrator first (counts, lost tasks, restarts), then the update
// planner on the world as the orchestrator's plan leaves it. The worker wraps this with I/O:
// load, call, write the result in one transaction, then schedule the new tasks.
import { orchestrate } from "./orchestrator";
import { applyPlan, mergePlans, type Plan } from "./plan";
import type { NodeInfo, ServiceSpec, Task } from "./types";
import { planUpdate, startUpdate, type UpdateState } from "./update-planner";

/** Everything one reconcile of one service needs, the clock and the id source included. */
export interface ReconcileInput {
  readonly serviceId: string;
  readonly spec: ServiceSpec;
  readonly version: number;
  /** The spec before the last change, for a rollback. */
  readonly previousSpec?: ServiceSpec;
  /** The service's tasks, finished ones included (restart attempts are counted from them). */
  readonly tasks: readonly Task[];
  readonly nodes: readonly NodeInfo[];
  /** The persisted rolling-update state, if any. */
  readonly update?: UpdateState;
  readonly now: number;
  /** Allocates ids for new tasks (the adapter passes randomUUID). */
  readonly newId: () => string;
}

/** The decisions of one reconcile, ready to be written. */
export interface ReconcileResult {
  /** Orchestrator and update decisions merged. */
  readonly plan: Plan;
  /** `plan.create` as tasks with their ids, in the same order: insert these, then schedule them. */
  readonly newTasks: readonly Task[];
  /** The service's tasks as they will be once the plan is written. */
  readonly tasks: readonly Task[];
  /** The update state to persist (unchanged, advanced, or newly started); absent if none. */
  readonly update?: UpdateState;
  /** The failure action asked for a rollback to this spec (see `UpdateDecision.rollbackTo`). */
  readonly rollbackTo?: ServiceSpec;
}

/**
 * Runs the orchestrator, then the update planner. An update starts by itself when tasks are out
 * of date and no update targets the current version (the spec changed since the last one); a
 * paused update stays paused until the caller starts a new one.
 */
export function reconcileService(input: ReconcileInput): ReconcileResult {
  const { spec, version, now } = input;
  const forThisVersion = input.update?.targetVersion === version ? input.update : undefined;
  const base = orchestrate(spec, version, input.tasks, input.nodes, {
    now,
    serviceId: input.serviceId,
    ...(forThisVersion ? { equivalentVersions: forThisVersion.equivalentVersions } : {}),
    ...(forThisVersion?.moving ? { outdatedTaskIds: forThisVersion.moving } : {}),
  });
  const firstIds = base.create.map(() => input.newId());
  let tasks = applyPlan(input.tasks, base, { now, newId: (_t, i) => firstIds[i] });
  let update = forThisVersion ?? (base.update.length > 0 ? startUpdate(version, now) : input.update);
  if (!update || update.targetVersion !== version) {
    return { plan: base, newTasks: tasks.slice(input.tasks.length), tasks, ...(update ? { update } : {}) };
  }
  const decision = planUpdate(spec, input.previousSpec, tasks, input.nodes, update, now);
  update = decision.state;
  const moreIds = decision.plan.create.map(() => input.newId());
  tasks = applyPlan(tasks, decision.plan, { now, newId: (_t, i) => moreIds[i] });
  const plan = mergePlans(base, decision.plan);
  const newTasks = tasks.slice(input.tasks.length);
  return { plan, newTasks, tasks, update, ...(decision.rollbackTo ? { rollbackTo: decision.rollbackTo } : {}) };
}
