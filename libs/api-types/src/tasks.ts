/** Observed task states; a task only moves forward through them. */
export type TaskState =
  | "NEW"
  | "PENDING"
  | "ASSIGNED"
  | "ACCEPTED"
  | "PREPARING"
  | "STARTING"
  | "RUNNING"
  | "COMPLETE"
  | "SHUTDOWN"
  | "FAILED"
  | "REJECTED"
  | "ORPHANED";
export type DesiredState = "running" | "shutdown";

/**
 * NEW … RUNNING: a task on its way to running, or running. A value, not only a type, so the
 * console need not write the list again; apps/api checks it equals @flotilla/core's at compile time.
 */
export const ACTIVE_TASK_STATES = [
  "NEW",
  "PENDING",
  "ASSIGNED",
  "ACCEPTED",
  "PREPARING",
  "STARTING",
  "RUNNING",
] as const satisfies readonly TaskState[];

/** `GET /api/v1/tasks` (filters service, node, desired-state), `GET /api/v1/tasks/{id}`. */
export interface TaskView {
  id: string;
  /** `web.1` (replicated) or `web.<node id prefix>` (global). */
  name: string;
  serviceId: string;
  serviceName: string;
  slot: number | null;
  nodeId: string | null;
  nodeHostname: string | null;
  specVersion: number;
  state: TaskState;
  desiredState: DesiredState;
  /** Why the task is where it is ("no suitable node (...)"). */
  message: string | null;
  error: string | null;
  containerId: string | null;
  exitCode: number | null;
  startedAt: string | null;
  finishedAt: string | null;
  createdAt: string;
  /** The last state change. */
  updatedAt: string;
}
