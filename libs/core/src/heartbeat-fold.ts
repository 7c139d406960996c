// The heartbeat fold: what one agent's report of its containers means for the tasks the control
// plane placed on that node. Pure: the adapter reads the tasks and the remembered "missing"
// counts (kept in Postgres so every API replica folds alike), calls this, and writes the result.
import { foldContainerState, type ContainerObservation } from "./task-state";
import type { Task } from "./types";

/** A container as the agent reported it. */
export interface ReportedContainer {
  readonly id: string;
  /** The task label of the container; containers without one are not Flotilla's and are ignored. */
  readonly taskId?: string;
  readonly observation: ContainerObservation;
}

/** A task the control plane expects on this node (an active state), with what the fold needs. */
export interface NodeTask {
  readonly task: Task;
  readonly containerId: string | null;
  /** Consecutive reports of this node that lacked the task's container. */
  readonly missingReports: number;
}

export interface FoldInput {
  /** The node's active tasks, read after the report arrived. */
  readonly tasks: readonly NodeTask[];
  readonly reported: readonly ReportedContainer[];
  /**
   * Of the reported containers' task ids that are not among `tasks`: those the control plane
   * still wants running somewhere (live, desired running). Their containers are never strays.
   */
  readonly wanted: ReadonlySet<string>;
  readonly now: number;
  /**
   * When the report arrived. The agent built it just before; it may be folded much later when
   * the control plane is busy, so whether it could have listed a container is judged from this.
   */
  readonly receivedAt: number;
  /**
   * False when the report arrived before the control plane's last outage ended: it may predate
   * what was decided since, so it neither counts a container missing nor removes strays.
   */
  readonly current: boolean;
  /** A task must have been in its state this long before the report arrived for a missing container to count. */
  readonly settleMs: number;
  /** A claim (ACCEPTED) younger than this belongs to a dispatcher that records the outcome itself. */
  readonly staleClaimMs: number;
}

/** A task's move, conditional (for the writer) on the state it was read in. */
export interface TaskChange {
  readonly taskId: string;
  readonly from: Task["state"];
  readonly next: Task;
  readonly containerId?: string;
}

export interface FoldResult {
  readonly changes: readonly TaskChange[];
  /** New "missing from reports" counts, only for tasks whose count changes. */
  readonly missing: ReadonlyMap<string, number>;
  /** A task was left to the dispatcher that claimed it: fold the next report even if identical. */
  readonly deferred: boolean;
  /** Containers no task wants: to be stopped and removed on this node. */
  readonly strays: readonly string[];
}

/** Reports in a row that must lack a container before it counts as vanished. */
export const VANISHED_AFTER_REPORTS = 2;

/**
 * Folds a report into the node's tasks: observed states move tasks forward (foldContainerState);
 * a running task's container counts as vanished only when missing from VANISHED_AFTER_REPORTS
 * current reports in a row, each received `settleMs` after the task reached its state (a report
 * is read some time after the agent built it, so it may predate a container just started); containers
 * whose task is neither on this node nor wanted anywhere are strays.
 */
export function foldReport(input: FoldInput): FoldResult {
  const byTask = new Map<string, ReportedContainer>();
  for (const c of input.reported) if (c.taskId) byTask.set(c.taskId, c);
  const changes: TaskChange[] = [];
  const missing = new Map<string, number>();
  let deferred = false;
  for (const nt of input.tasks) {
    const t = nt.task;
    if (t.state === "ACCEPTED" && t.updatedAt > input.now - input.staleClaimMs) {
      deferred = true;
      continue;
    }
    const c = byTask.get(t.id);
    if (c) {
      if (nt.missingReports !== 0) missing.set(t.id, 0);
      const next = foldContainerState(t, c.observation, input.now);
      if (next !== t || nt.containerId !== c.id) changes.push({ taskId: t.id, from: t.state, next, containerId: c.id });
      continue;
    }
    if (!nt.containerId || (t.state !== "RUNNING" && t.state !== "STARTING") || !input.current) continue;
    // A report that arrived before the task settled in its state may predate its container: it
    // neither counts nor resets the count.
    if (t.updatedAt > input.receivedAt - input.settleMs) continue;
    const count = nt.missingReports + 1;
    if (count >= VANISHED_AFTER_REPORTS) {
      const next = foldContainerState(t, { kind: "removed" }, input.now);
      if (next !== t) changes.push({ taskId: t.id, from: t.state, next });
    }
    missing.set(t.id, count);
  }
  const onNode = new Set(input.tasks.map((nt) => nt.task.id));
  const strays = input.current
    ? input.reported.filter((c) => c.taskId !== undefined && !onNode.has(c.taskId) && !input.wanted.has(c.taskId)).map((c) => c.id)
    : [];
  return { changes, missing, deferred, strays };
}
