/** BullMQ queues of the control plane. Names cannot contain ':' (BullMQ's key separator). */
export const QUEUE = {
  reconcile: "reconcile",
  provision: "provision",
  sweep: "sweep",
} as const;
export type QueueName = (typeof QUEUE)[keyof typeof QUEUE];

/**
 * One reconcile per service at a time: the same key collapses duplicates, and a change that
 * arrives while that service's job runs leaves exactly one follow-up job, never a lost change.
 */
export const reconcileKey = (serviceId: string) => `reconcile:service:${serviceId}`;

/** The provision job of a machine for one operation; repeated requests collapse. */
export const provisionJobId = (machineId: string, operation: string) => `provision-${operation}-${machineId}`;

export interface ReconcileJob {
  serviceId: string;
  reason: string;
}

export interface ProvisionJob {
  machineId: string;
  operation: string;
  params?: Record<string, unknown>;
}

export type SweepJob = Record<string, never>;
