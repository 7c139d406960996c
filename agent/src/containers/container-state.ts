/**
 * How a container's recorded run state moves: to running after a start, back to created (or
 * exited, if it ran before) after a start that failed, to exited after an exit. Pure: the
 * container service saves what these return.
 */
import type { ContainerState } from "./container-types";
import type { ShimState } from "./shim-client";

/** The state once the shim reports the container running. */
export function stateAfterStart(prev: ContainerState, s: ShimState): ContainerState {
  return {
    status: "running",
    pid: s.pid,
    shimPid: s.shimPid,
    exitCode: 0,
    oomKilled: false,
    error: "",
    startedAt: s.startedAt,
    finishedAt: prev.finishedAt,
  };
}

/** The state after a failed start: the error's exit code (125, Docker's, unless it says) and message. */
export function stateAfterFailedStart(prev: ContainerState, err: unknown): ContainerState {
  return {
    ...prev,
    status: prev.startedAt ? "exited" : "created",
    pid: 0,
    shimPid: 0,
    exitCode: (err as { exitCode?: number }).exitCode ?? 125,
    error: (err as Error).message,
  };
}

/** The state after an exit: from the shim's record, or `fallbackError` when there is none. */
export function stateAfterExit(prev: ContainerState, s: ShimState | null, fallbackError: string): ContainerState {
  return {
    status: "exited",
    pid: 0,
    shimPid: 0,
    exitCode: s?.exitCode ?? 255,
    oomKilled: !!s?.oomKilled,
    error: s ? (s.error ?? "") : fallbackError,
    startedAt: prev.startedAt,
    finishedAt: s?.finishedAt ?? new Date().toISOString(),
  };
}
