// Following a service after a change until it converges, is stuck, pauses or times out.
import { ACTIVE_TASK_STATES, isHeldMessage, parseDuration } from "@flotilla/core";
import type { ServiceView as ServiceJson, TaskView as TaskJson } from "@flotilla/api-types";
import { ApiClient, CtlError } from "../client";
import { note } from "../output";
import { parse } from "./service-flags";

const ACTIVE: ReadonlySet<string> = new Set(ACTIVE_TASK_STATES);
// Every non-running task pending with a reason for this long means nothing will change by
// itself (a short blip is normal: a stop-first update frees capacity a moment later).
const STUCK_MS = 2_000;

/**
 * Follows a service until every wanted task runs the current spec. Never hangs: stops with the
 * reasons when the tasks that are not running all wait for a node, when an update pauses, or at
 * the timeout. Progress goes to stderr.
 */
export async function converge(c: ApiClient, id: string, timeoutMs: number): Promise<void> {
  const end = Date.now() + timeoutMs;
  let last = "";
  let stuckSince: number | undefined;
  for (;;) {
    const svc = await c.request<ServiceJson>("GET", `/api/v1/services/${id}`);
    const tasks = await c.request<TaskJson[]>("GET", `/api/v1/tasks?service=${id}&desired-state=running`);
    const live = tasks.filter((t) => ACTIVE.has(t.state));
    // Current: the task version, or one the update counts as the same spec (a rollback's, a
    // rebalance's), unless a rebalance is moving the task.
    const u = svc.updateState?.targetVersion === svc.taskVersion ? svc.updateState : undefined;
    const current = live.filter(
      (t) => t.specVersion === svc.taskVersion || (!!u?.equivalentVersions?.includes(t.specVersion) && !u.moving?.includes(t.id)),
    );
    const running = current.filter((t) => t.state === "RUNNING").length;
    const desired = svc.mode === "replicated" ? svc.desired : live.length;
    const line = `${svc.name}: ${running}/${desired} tasks running${svc.updateState && svc.updateState.status !== "completed" && svc.updateState.status !== "rollback-completed" ? ` (${svc.updateState.message})` : ""}`;
    if (line !== last) note(line);
    last = line;
    if (running === desired && live.length === desired) {
      note(`${svc.name}: converged`);
      return;
    }
    if (svc.updateState?.status === "paused" || svc.updateState?.status === "rollback-paused") {
      throw new CtlError(`${svc.name}: ${svc.updateState.message}`);
    }
    const waiting = live.filter((t) => t.state !== "RUNNING");
    // A task held while its slot's old task stops is placed by itself once that task has stopped.
    const stuck = waiting.length > 0 && waiting.every((t) => t.state === "PENDING" && t.message && !isHeldMessage(t.message));
    stuckSince = stuck ? (stuckSince ?? Date.now()) : undefined;
    if (stuckSince !== undefined && Date.now() - stuckSince >= STUCK_MS) {
      for (const t of waiting) note(`${t.name}: ${t.message}`);
      throw new CtlError(
        `${svc.name}: ${waiting.length} task(s) cannot be placed: ${[...new Set(waiting.map((t) => t.message))].join("; ")}`,
      );
    }
    if (Date.now() > end)
      throw new CtlError(`${svc.name}: not converged after ${Math.round(timeoutMs / 1000)}s (${running}/${desired} running)`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** Follows convergence unless `--detach`; `--timeout` bounds it. */
export async function follow(c: ApiClient, svc: ServiceJson, opts: { detach?: boolean; timeout: string }): Promise<void> {
  if (opts.detach) return;
  await converge(
    c,
    svc.id,
    parse("--timeout", () => parseDuration(opts.timeout)),
  );
}
