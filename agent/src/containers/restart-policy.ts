/**
 * Docker's container restart policies, decided purely: after an exit, or when the agent starts
 * and finds a stopped container, should it run again, and after how long?
 */
import type { ContainerRecord } from "./container-types";

/** Docker's back-off: 100 ms doubling per restart, at most a minute. */
export const BACKOFF_START_MS = 100;
export const BACKOFF_MAX_MS = 60_000;
/** A container that ran this long before exiting starts over at the shortest delay. */
export const BACKOFF_RESET_AFTER_MS = 10_000;

export type RestartTrigger = "exit" | "agent-start";

/**
 * Whether the container restarts. `exit`: it just exited on its own (not by `docker stop`/`kill`).
 * `agent-start`: the agent found it stopped; Docker restarts "always" containers then even if
 * they were stopped by hand, "unless-stopped" only if they were not.
 */
export function shouldRestart(
  c: Pick<ContainerRecord, "hostConfig" | "manualStop" | "restartCount" | "state">,
  trigger: RestartTrigger,
): boolean {
  const { Name, MaximumRetryCount } = c.hostConfig.RestartPolicy;
  switch (Name) {
    case "always":
      return trigger === "agent-start" || !c.manualStop;
    case "unless-stopped":
      return !c.manualStop;
    case "on-failure":
      if (c.manualStop || c.state.exitCode === 0) return false;
      return MaximumRetryCount === 0 || c.restartCount < MaximumRetryCount;
    default:
      return false;
  }
}

/** Delay before restart number `restartCount + 1`, given how long the last run lasted. */
export function restartDelayMs(restartCount: number, ranForMs: number): number {
  if (ranForMs >= BACKOFF_RESET_AFTER_MS) return BACKOFF_START_MS;
  return Math.min(BACKOFF_MAX_MS, BACKOFF_START_MS * 2 ** Math.min(restartCount, 20));
}
