// The task state machine. Observed states only move forward (swarmkit's rule), and terminal
// states are final: the exit code and error of a finished task are its record, and nothing that
// arrives later — a delayed heartbeat, a node coming back — may overwrite them.
import { TASK_STATES, type Task, type TaskState } from "./types";

const RANK: Readonly<Record<TaskState, number>> = Object.fromEntries(TASK_STATES.map((s, i) => [s, i])) as Record<TaskState, number>;

/** Position of a state in the forward order (NEW = 0 … ORPHANED = 11). */
export function taskStateRank(state: TaskState): number {
  return RANK[state];
}

/** COMPLETE, SHUTDOWN, FAILED, REJECTED or ORPHANED: the task will never run again. */
export function isTerminal(state: TaskState): boolean {
  return RANK[state] >= RANK.COMPLETE;
}

/** NEW … RUNNING: the task is on its way to running, or running. */
export function isActive(state: TaskState): boolean {
  return !isTerminal(state);
}

/** FAILED or REJECTED: the task ended because something went wrong with it (not its node). */
export function isFailure(state: TaskState): boolean {
  return state === "FAILED" || state === "REJECTED";
}

/**
 * A live task counts towards the service's replicas: the orchestrator still wants it running
 * and it has not finished.
 */
export function isLive(task: Pick<Task, "state" | "desiredState">): boolean {
  return task.desiredState === "running" && isActive(task.state);
}

/**
 * Whether a task may move from `from` to `to`: strictly forward, and never out of a terminal state.
 */
export function canTransition(from: TaskState, to: TaskState): boolean {
  return !isTerminal(from) && RANK[to] > RANK[from];
}

/** What came with a state report: the container's exit code, an error, a message for people. */
export interface TransitionDetails {
  readonly exitCode?: number;
  readonly error?: string;
  readonly message?: string;
}

/**
 * Moves a task to `to` at `now`, recording when it started running and when it finished.
 *
 * A move that `canTransition` refuses returns the *same object*, unchanged, rather than
 * throwing: reports from agents arrive late and twice as a matter of course, and a stale report
 * is not an error. Callers that must know compare identity (`advance(t, s, now) === t`).
 */
export function advance(task: Task, to: TaskState, now: number, details: TransitionDetails = {}): Task {
  if (!canTransition(task.state, to)) return task;
  const reachesRunning = to === "RUNNING" && task.startedAt === undefined;
  return {
    ...task,
    state: to,
    updatedAt: now,
    ...(reachesRunning ? { startedAt: now } : {}),
    ...(isTerminal(to) ? { finishedAt: now } : {}),
    ...(details.exitCode !== undefined ? { exitCode: details.exitCode } : {}),
    ...(details.error !== undefined ? { error: details.error } : {}),
    ...(details.message !== undefined ? { message: details.message } : {}),
  };
}

/** A container's health check status, as docker reports it. */
export type ContainerHealth = "starting" | "healthy" | "unhealthy";

/** The error of a task whose health check failed: the reason `ctl service ps` shows. */
export function unhealthyError(output?: string): string {
  const last = (output ?? "").replace(/\s+/g, " ").trim().slice(0, 200);
  return `task: unhealthy container${last ? ` (last check: ${last})` : ""}`;
}

/** What an agent reports about a task's container. */
export type ContainerObservation =
  | { readonly kind: "created" }
  | {
      readonly kind: "running";
      /** The container's health check status, when it has one. */
      readonly health?: ContainerHealth;
      /** The last probe's output, for the task's error when unhealthy. */
      readonly healthOutput?: string;
    }
  | { readonly kind: "exited"; readonly exitCode: number }
  | { readonly kind: "oom"; readonly exitCode?: number }
  | { readonly kind: "rejected"; readonly error: string }
  | { readonly kind: "removed" };

/** The task state (and details) an observation implies for a task, before the forward-only check. */
export function observedTaskState(
  task: Pick<Task, "desiredState">,
  observation: ContainerObservation,
): { readonly state: TaskState } & TransitionDetails {
  // Once we asked a task to stop, however it ends is the stop we asked for: SIGTERM and SIGKILL
  // exits (143, 137) must not read as failures and trigger restarts.
  const stopping = task.desiredState === "shutdown";
  switch (observation.kind) {
    case "created":
      return { state: "STARTING" };
    case "running":
      // A task with a health check runs for the orchestrator only once healthy: until then it
      // is STARTING (a rolling update waits for it, the ingress sends it nothing), and a failed
      // check fails the task, which its restart policy then replaces.
      if (observation.health === "starting") return { state: "STARTING" };
      if (observation.health === "unhealthy" && !stopping) return { state: "FAILED", error: unhealthyError(observation.healthOutput) };
      return { state: "RUNNING" };
    case "exited":
      if (stopping) return { state: "SHUTDOWN", exitCode: observation.exitCode };
      return observation.exitCode === 0
        ? { state: "COMPLETE", exitCode: 0 }
        : { state: "FAILED", exitCode: observation.exitCode, error: `task: non-zero exit (${observation.exitCode})` };
    case "oom": {
      const exitCode = observation.exitCode ?? 137;
      if (stopping) return { state: "SHUTDOWN", exitCode };
      return { state: "FAILED", exitCode, error: "task: out of memory (killed by the OOM killer)" };
    }
    case "rejected":
      return { state: "REJECTED", error: observation.error };
    case "removed":
      if (stopping) return { state: "SHUTDOWN" };
      return { state: "FAILED", error: "task: container removed while it should be running" };
  }
}

/**
 * Folds an agent's observation of a task's container into the task. Returns the task unchanged
 * (same object) when the observation is stale — see `advance`.
 */
export function foldContainerState(task: Task, observation: ContainerObservation, now: number): Task {
  const { state, ...details } = observedTaskState(task, observation);
  return advance(task, state, now, details);
}
