// The restart policy: given the history of one slot (replicated) or one node (global), may a
// new task start now, later, or never? Only exits of the task itself count — a task we stopped
// (desired state shutdown) or one lost with its node (ORPHANED) is not the task's fault, so it is
// replaced at once and uses no restart attempt.
import { isFailure, isTerminal } from "./task-state";
import type { RestartPolicy, Task } from "./types";

/** The restart policy's answer for one slot or node. */
export type RestartDecision =
  | { readonly kind: "now"; readonly restart: boolean; readonly message: string }
  | { readonly kind: "later"; readonly atMs: number; readonly message: string }
  | { readonly kind: "never"; readonly message: string };

function endOf(t: Task): number {
  return t.finishedAt ?? t.updatedAt;
}

/** The task ended on its own: terminal while we still wanted it running, and not lost with its node. */
export function exitedOnItsOwn(t: Task): boolean {
  return t.desiredState === "running" && isTerminal(t.state) && t.state !== "ORPHANED";
}

function describeExit(t: Task): string {
  if (t.state === "REJECTED") return `rejected${t.error ? `: ${t.error}` : ""}`;
  if (t.exitCode !== undefined) return `exit code ${t.exitCode}`;
  return t.state.toLowerCase();
}

/**
 * Decides whether the slot or node whose tasks are `history` (all of them, any state; no live
 * task among them) gets a new task. Attempts are counted per spec version (`isCurrent`): a new
 * spec — typically the fix — starts with a fresh budget.
 */
export function restartDecision(
  policy: RestartPolicy,
  history: readonly Task[],
  isCurrent: (specVersion: number) => boolean,
  now: number,
): RestartDecision {
  let last: Task | undefined;
  for (const t of history) {
    if (!isTerminal(t.state)) continue;
    if (!last || endOf(t) > endOf(last) || (endOf(t) === endOf(last) && t.createdAt > last.createdAt)) last = t;
  }
  if (!last) return { kind: "now", restart: false, message: "new task" };
  if (!exitedOnItsOwn(last)) return { kind: "now", restart: false, message: `replaces ${last.id}` };

  const exit = describeExit(last);
  if (policy.condition === "none") return { kind: "never", message: `${exit}; restart condition is none` };
  if (policy.condition === "on-failure" && !isFailure(last.state)) {
    return { kind: "never", message: `${exit}; restart condition is on-failure` };
  }

  let atMs = endOf(last) + policy.delayMs;
  if (policy.maxAttempts > 0) {
    const ends = history
      .filter((t) => exitedOnItsOwn(t) && isCurrent(t.specVersion))
      .map(endOf)
      .filter((end) => policy.windowMs === 0 || end > now - policy.windowMs)
      .sort((a, b) => a - b);
    // k exits mean k-1 restarts were made; restart number k is allowed while k <= maxAttempts.
    const excess = ends.length - policy.maxAttempts;
    if (excess > 0) {
      const giveUp = `${exit}; gave up after ${policy.maxAttempts} restart${policy.maxAttempts === 1 ? "" : "s"}`;
      if (policy.windowMs === 0) return { kind: "never", message: giveUp };
      // Attempts are counted within a sliding window: once enough exits leave it, try again.
      atMs = Math.max(atMs, ends[excess - 1] + policy.windowMs);
      return { kind: "later", atMs, message: `${giveUp} within the window; next attempt when it slides` };
    }
  }
  if (now < atMs) return { kind: "later", atMs, message: `${exit}; restart delayed until ${new Date(atMs).toISOString()}` };
  return { kind: "now", restart: true, message: `restart after ${exit}` };
}
