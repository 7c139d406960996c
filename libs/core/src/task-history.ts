// Which finished tasks a service keeps: its restart attempts and update failures are counted
// from them, and `ctl service ps` shows them; the rest are deleted.
import { isTerminal } from "./task-state";
import type { RestartPolicy, Task } from "./types";

/** Finished tasks kept per slot (or node, in global mode) besides what the restart policy needs. */
export const TASK_HISTORY = 5;

/**
 * The finished tasks to delete: per slot (or node), all but the newest TASK_HISTORY, or
 * maxAttempts + 1 if more; never a task the running update remembers as failed.
 */
export function tasksToPrune(
  tasks: readonly Pick<Task, "id" | "state" | "slot" | "nodeId" | "createdAt">[],
  policy: Pick<RestartPolicy, "maxAttempts">,
  keepFailed: readonly string[],
): string[] {
  const keep = Math.max(TASK_HISTORY, policy.maxAttempts + 1);
  const remembered = new Set(keepFailed);
  const bySlot = new Map<string, (typeof tasks)[number][]>();
  for (const t of tasks) {
    if (!isTerminal(t.state) || remembered.has(t.id)) continue;
    const key = t.slot !== undefined ? `s${t.slot}` : `n${t.nodeId}`;
    bySlot.set(key, [...(bySlot.get(key) ?? []), t]);
  }
  return [...bySlot.values()].flatMap((ts) =>
    [...ts]
      .sort((a, b) => b.createdAt - a.createdAt)
      .slice(keep)
      .map((t) => t.id),
  );
}
