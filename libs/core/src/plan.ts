// The output of the orchestrator and the update planner: what to create, what to stop, which
// tasks are out of date, and when to look again. A plan is data; the reconcile worker writes it
// in one transaction and never decides anything itself.
import { isTerminal } from "./task-state";
import type { Task } from "./types";

/** Why a task is created. */
export type CreateReason =
  /** A replicated slot that did not exist (new service, scale up). */
  | "scale-up"
  /** A global service gains a node (new node, node reactivated, constraints now met). */
  | "new-node"
  /** The slot's or node's previous task exited and the restart policy allows another. */
  | "restart"
  /** The previous task was lost with its node (down, drained, removed) or broke a constraint. */
  | "reschedule"
  /** A rolling update (or rollback) replaces an out-of-date task. */
  | "update";

/** A task the orchestrator wants to exist. The worker gives it an id and inserts it. */
export interface NewTask {
  readonly serviceId: string;
  /** Replicated mode: the slot this task fills. */
  readonly slot?: number;
  /** Global mode: the node this task must run on (the scheduler only checks that node). */
  readonly nodeId?: string;
  readonly specVersion: number;
  readonly state: "NEW";
  readonly desiredState: "running";
  readonly reason: CreateReason;
  /** For people and the event log: "restart after exit code 1". */
  readonly message: string;
  /** The task this one takes over from, if any. */
  readonly replaces?: string;
}

/** Why a task is stopped. */
export type StopReason =
  "scale-down" | "node-down" | "node-drained" | "node-gone" | "constraints" | "duplicate" | "superseded" | "mode-changed" | "update";

/**
 * Set the task's desired state to `shutdown`; the agent stops the container. The task may
 * already be terminal (a dead task of a removed slot): then only its desired state changes.
 */
export interface StopTask {
  readonly taskId: string;
  readonly reason: StopReason;
  readonly message: string;
  /**
   * The node is down or gone, so no agent will ever report this task's end: record its observed
   * state as ORPHANED now (unless it is already terminal).
   */
  readonly orphan: boolean;
}

/** A live task running an older spec version; the rolling-update planner decides when it is replaced. */
export interface OutdatedTask {
  readonly taskId: string;
  readonly slot?: number;
  readonly nodeId?: string;
  readonly specVersion: number;
}

/** Reconcile this service again at `atMs` (a restart delay or monitor period ends then). */
export interface FollowUp {
  readonly atMs: number;
  readonly reason: string;
}

/** Decisions for one service at one instant. */
export interface Plan {
  readonly create: readonly NewTask[];
  readonly stop: readonly StopTask[];
  readonly update: readonly OutdatedTask[];
  readonly followUps: readonly FollowUp[];
}

export const EMPTY_PLAN: Plan = { create: [], stop: [], update: [], followUps: [] };

/** Turns a planned task into a Task with the id the caller allocated. */
export function materializeTask(t: NewTask, id: string, now: number): Task {
  return {
    id,
    serviceId: t.serviceId,
    ...(t.slot !== undefined ? { slot: t.slot } : {}),
    ...(t.nodeId !== undefined ? { nodeId: t.nodeId } : {}),
    specVersion: t.specVersion,
    state: t.state,
    desiredState: t.desiredState,
    createdAt: now,
    updatedAt: now,
    message: t.message,
  };
}

/**
 * The tasks as they will be once `plan` is written: stopped tasks get desired state `shutdown`
 * (and ORPHANED when `orphan`), new tasks are added with ids from `newId`. Lets a caller run the
 * next pure step (update planner, scheduler) on the post-plan view, and lets tests check
 * invariants of the outcome.
 */
export function applyPlan(
  tasks: readonly Task[],
  plan: Pick<Plan, "create" | "stop">,
  options: { readonly now: number; readonly newId: (t: NewTask, index: number) => string },
): Task[] {
  const stops = new Map(plan.stop.map((s) => [s.taskId, s]));
  const out = tasks.map((t): Task => {
    const s = stops.get(t.id);
    if (!s) return t;
    const orphaned = s.orphan && !isTerminal(t.state);
    return {
      ...t,
      desiredState: "shutdown",
      ...(orphaned ? { state: "ORPHANED" as const, updatedAt: options.now, finishedAt: options.now } : {}),
      message: s.message,
    };
  });
  plan.create.forEach((c, i) => out.push(materializeTask(c, options.newId(c, i), options.now)));
  return out;
}

/**
 * Concatenates plans (an orchestrator plan and an update plan for the same service). A task
 * stopped by several plans is stopped once, for the first plan's reason.
 */
export function mergePlans(...plans: readonly Plan[]): Plan {
  const seen = new Set<string>();
  return {
    create: plans.flatMap((p) => p.create),
    stop: plans.flatMap((p) => p.stop).filter((s) => !seen.has(s.taskId) && seen.add(s.taskId)),
    update: plans.flatMap((p) => p.update),
    followUps: plans.flatMap((p) => p.followUps),
  };
}

/** The earliest follow-up of a plan, if any: when to enqueue the next reconcile. */
export function nextFollowUp(plan: Pick<Plan, "followUps">): FollowUp | undefined {
  let first: FollowUp | undefined;
  for (const f of plan.followUps) if (!first || f.atMs < first.atMs) first = f;
  return first;
}
