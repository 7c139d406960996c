// The rolling-update planner: paces the replacement of out-of-date tasks. Batches of
// `parallelism` tasks; the next batch starts `delayMs` after the previous one is running; a new
// task that fails within `monitorMs` of starting counts against the update, and past
// `maxFailureRatio` the failure action decides: pause, continue, or roll back.
//
// The pace is derived from the tasks themselves (which are in flight, when they started), so
// the only state to persist between reconciles is the small `UpdateState`.
import { matchesConstraints, parseConstraints } from "./constraints";
import { nodeProblem } from "./orchestrator";
import { EMPTY_PLAN, type FollowUp, type NewTask, type Plan, type StopTask } from "./plan";
import { exitedOnItsOwn } from "./restart-policy";
import { isFailure, isLive } from "./task-state";
import type { NodeInfo, ServiceSpec, Task, UpdateConfig } from "./types";

/** Where an update stands. Only `updating` and `rollback-started` make progress. */
export type UpdateStatus = "updating" | "paused" | "completed" | "rollback-started" | "rollback-paused" | "rollback-completed";

/** The rolling update's progress, persisted by the caller next to the service. */
export interface UpdateState {
  readonly status: UpdateStatus;
  /** The service version tasks are moving to. */
  readonly targetVersion: number;
  /** Older versions whose spec equals the target's: their tasks are not replaced. */
  readonly equivalentVersions: readonly number[];
  /** Epoch ms at which the update (or rollback) started. */
  readonly startedAt: number;
  /** Epoch ms at which the last batch was started. */
  readonly lastBatchAt?: number;
  /** Target-version tasks that failed within their monitor period, so far. */
  readonly failedTaskIds: readonly string[];
  readonly completedAt?: number;
  /** For people: "updating: 3/10 tasks", "update paused: 2 of 10 tasks failed". */
  readonly message: string;
  /**
   * A rebalance (`service update --rebalance`): nothing in the spec changed; the tasks in
   * `moving` are replaced as an update would (batches, order, health), so the scheduler places
   * them again. `moving` is chosen by the first reconcile (core's `rebalanceMoves`).
   */
  readonly rebalance?: boolean;
  readonly moving?: readonly string[];
}

/** The state of a new update (or rollback) to `targetVersion`, started at `now`. */
export function startUpdate(
  targetVersion: number,
  now: number,
  options: { readonly rollback?: boolean; readonly rebalance?: boolean; readonly equivalentVersions?: readonly number[] } = {},
): UpdateState {
  return {
    status: options.rollback ? "rollback-started" : "updating",
    targetVersion,
    equivalentVersions: options.equivalentVersions ?? [],
    startedAt: now,
    failedTaskIds: [],
    message: options.rollback ? "rollback started" : options.rebalance ? "rebalance started" : "update started",
    ...(options.rebalance ? { rebalance: true } : {}),
  };
}

/** Whether the update is still making progress (not paused, not finished). */
export function isUpdateActive(state: UpdateState): boolean {
  return state.status === "updating" || state.status === "rollback-started";
}

/** What to do next for an update. */
export interface UpdateDecision {
  /** The state to persist. */
  readonly state: UpdateState;
  /** Tasks to create and stop now, and when to look again. `update` is always empty. */
  readonly plan: Plan;
  /**
   * Set when the failure action is `rollback`: install this spec as a new service version and
   * start a rollback with `startUpdate(newVersion, now, { rollback: true, equivalentVersions: [its old version] })`.
   * Until the caller does, `state` is paused, so ignoring it is safe.
   */
  readonly rollbackTo?: ServiceSpec;
}

interface Identity {
  readonly slot?: number;
  readonly nodeId?: string;
  readonly current: Task[];
  readonly old: Task[];
}

function identities(spec: ServiceSpec, tasks: readonly Task[], isCurrent: (t: Task) => boolean): Identity[] {
  const byKey = new Map<string, Identity>();
  for (const t of tasks) {
    if (!isLive(t)) continue;
    // Same identities as the orchestrator: a slot in replicated mode, a node in global mode.
    let at: { slot?: number; nodeId?: string } | undefined;
    if (spec.mode.kind === "replicated") at = t.slot !== undefined ? { slot: t.slot } : undefined;
    else at = t.nodeId !== undefined && t.slot === undefined ? { nodeId: t.nodeId } : undefined;
    if (!at) continue;
    const key = at.slot !== undefined ? `s${at.slot}` : `n${at.nodeId}`;
    let id = byKey.get(key);
    if (!id) byKey.set(key, (id = { ...at, current: [], old: [] }));
    (isCurrent(t) ? id.current : id.old).push(t);
  }
  return [...byKey.values()];
}

function failuresOf(tasks: readonly Task[], state: UpdateState, config: UpdateConfig, isCurrent: (v: number) => boolean): Set<string> {
  const failed = new Set(state.failedTaskIds);
  for (const t of tasks) {
    if (!isCurrent(t.specVersion) || !exitedOnItsOwn(t) || !isFailure(t.state) || t.createdAt < state.startedAt) continue;
    // A task that never ran failed in its monitor period by definition.
    const ranFor = t.startedAt === undefined ? 0 : (t.finishedAt ?? t.updatedAt) - t.startedAt;
    if (ranFor <= config.monitorMs) failed.add(t.id);
  }
  return failed;
}

function byPriority(a: Identity, b: Identity): number {
  const ra = a.old.some((t) => t.state === "RUNNING") ? 1 : 0;
  const rb = b.old.some((t) => t.state === "RUNNING") ? 1 : 0;
  if (ra !== rb) return ra - rb;
  if (a.slot !== undefined && b.slot !== undefined) return a.slot - b.slot;
  return (a.nodeId ?? "") < (b.nodeId ?? "") ? -1 : (a.nodeId ?? "") > (b.nodeId ?? "") ? 1 : 0;
}

/**
 * Decides the next step of a rolling update of the service to `spec` (version
 * `state.targetVersion`), or of a rollback (`state.status` is `rollback-started`, `spec` is the
 * spec rolled back to, `prevSpec` the one abandoned, whose `rollbackConfig` applies).
 *
 * Pass the tasks as they will be after the orchestrator's plan (`applyPlan`): the orchestrator
 * keeps counts right and replaces lost tasks; this only replaces healthy outdated ones. Tasks on
 * down, drained or vanished nodes are skipped regardless, as are global tasks on nodes that
 * cannot take a replacement (paused, unknown, constraints no longer met).
 */
export function planUpdate(
  spec: ServiceSpec,
  prevSpec: ServiceSpec | undefined,
  tasks: readonly Task[],
  nodes: readonly NodeInfo[],
  state: UpdateState,
  now: number,
): UpdateDecision {
  if (!isUpdateActive(state)) return { state, plan: EMPTY_PLAN };
  const rollingBack = state.status === "rollback-started";
  const config = rollingBack ? (prevSpec ?? spec).rollbackConfig : spec.updateConfig;
  const equivalent = new Set(state.equivalentVersions);
  const isCurrent = (v: number): boolean => v === state.targetVersion || equivalent.has(v);
  const what = rollingBack ? "rollback" : state.rebalance ? "rebalance" : "update";
  const moving = new Set(state.moving ?? []);

  const ids = identities(spec, tasks, (t) => isCurrent(t.specVersion) && !moving.has(t.id));
  const total = Math.max(1, spec.mode.kind === "replicated" ? spec.mode.replicas : ids.length);
  const failed = failuresOf(tasks, state, config, isCurrent);
  const next: UpdateState = { ...state, failedTaskIds: [...failed] };

  if (failed.size > 0 && failed.size / total > config.maxFailureRatio && config.failureAction !== "continue") {
    const why = `${failed.size} of ${total} task${total === 1 ? "" : "s"} failed (max failure ratio ${config.maxFailureRatio})`;
    const status = rollingBack ? "rollback-paused" : "paused";
    const paused: UpdateState = { ...next, status, message: `${what} paused: ${why}` };
    // A rebalance changed no spec: there is nothing to roll back to, so it pauses.
    if (config.failureAction === "rollback" && !rollingBack && !state.rebalance) {
      if (prevSpec) {
        return { state: { ...paused, message: `update failed: ${why}; rolling back` }, plan: EMPTY_PLAN, rollbackTo: prevSpec };
      }
      return { state: { ...paused, message: `${paused.message}; no previous spec to roll back to` }, plan: EMPTY_PLAN };
    }
    return { state: paused, plan: EMPTY_PLAN };
  }

  const nodesById = new Map(nodes.map((n) => [n.id, n]));
  const constraints = parseConstraints(spec.placement.constraints);
  const replaceable = (id: Identity): boolean => {
    if (id.current.length > 0 || id.old.length === 0) return false;
    if (id.old.some((t) => nodeProblem(t.nodeId, nodesById))) return false;
    if (id.nodeId === undefined) return true;
    const node = nodesById.get(id.nodeId);
    return !!node && node.status === "ready" && node.availability === "active" && matchesConstraints(node, constraints);
  };
  const outdated = ids.filter(replaceable).sort(byPriority);
  const inFlight = ids.filter((id) => id.current.some((t) => t.state !== "RUNNING")).length;
  const done = ids.filter((id) => id.current.length > 0).length;
  const progress = `${{ update: "updating", rollback: "rolling back", rebalance: "rebalancing" }[what]}: ${done}/${total} tasks`;

  if (inFlight > 0) return { state: { ...next, message: progress }, plan: EMPTY_PLAN };

  if (outdated.length === 0) {
    // Done replacing; the update completes once the newest task has lived through its monitor period.
    let monitorEnd = -Infinity;
    for (const id of ids) {
      for (const t of id.current) if (t.startedAt !== undefined) monitorEnd = Math.max(monitorEnd, t.startedAt + config.monitorMs);
    }
    if (now >= monitorEnd) {
      const status = rollingBack ? "rollback-completed" : "completed";
      return { state: { ...next, status, completedAt: now, message: `${what} completed` }, plan: EMPTY_PLAN };
    }
    const followUps: FollowUp[] = [{ atMs: monitorEnd, reason: `${what}: monitor period of the last batch ends` }];
    return { state: { ...next, message: `${progress}, monitoring` }, plan: { ...EMPTY_PLAN, followUps } };
  }

  if (state.lastBatchAt !== undefined && config.delayMs > 0) {
    let batchRunningAt = state.lastBatchAt;
    for (const id of ids) {
      for (const t of id.current) {
        if (t.createdAt >= state.lastBatchAt && t.startedAt !== undefined) batchRunningAt = Math.max(batchRunningAt, t.startedAt);
      }
    }
    const nextAt = batchRunningAt + config.delayMs;
    if (now < nextAt) {
      const followUps: FollowUp[] = [{ atMs: nextAt, reason: `${what}: delay between batches ends` }];
      return { state: { ...next, message: progress }, plan: { ...EMPTY_PLAN, followUps } };
    }
  }

  const batch = outdated.slice(0, config.parallelism === 0 ? outdated.length : config.parallelism);
  const create: NewTask[] = [];
  const stop: StopTask[] = [];
  for (const id of batch) {
    const primary = id.old.find((t) => t.state === "RUNNING") ?? id.old[0];
    if (config.order === "stop-first") {
      const message = `${what} to version ${state.targetVersion}`;
      for (const t of id.old) stop.push({ taskId: t.id, reason: "update", message, orphan: false });
    }
    create.push({
      serviceId: primary.serviceId,
      ...(id.slot !== undefined ? { slot: id.slot } : { nodeId: id.nodeId as string }),
      specVersion: state.targetVersion,
      state: "NEW",
      desiredState: "running",
      reason: "update",
      message: `${what} from version ${primary.specVersion} to ${state.targetVersion}`,
      replaces: primary.id,
    });
  }
  return {
    state: { ...next, lastBatchAt: now, message: progress },
    plan: { create, stop, update: [], followUps: [] },
  };
}
