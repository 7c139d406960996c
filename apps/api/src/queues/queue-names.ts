/** BullMQ queues of the control plane. Names cannot contain ':' (BullMQ's key separator). */
export const QUEUE = {
  reconcile: "reconcile",
  provision: "provision",
  sweep: "sweep",
  dispatch: "dispatch",
  rebalance: "rebalance",
} as const;
export type QueueName = (typeof QUEUE)[keyof typeof QUEUE];

/**
 * One reconcile per service at a time: the same key collapses duplicates, and a change that
 * arrives while that service's job runs leaves exactly one follow-up job, never a lost change.
 */
export const reconcileKey = (serviceId: string) => `reconcile:service:${serviceId}`;

/**
 * The two halves of a node's dispatch: starting what is assigned there, and stopping what is no
 * longer wanted. Apart, so that starts never queue behind stops that wait out grace periods
 * (a scale-down's stops held a dead host's replacements back by 30 s).
 */
export type DispatchPart = "start" | "stop";

/**
 * One dispatch of each part per node at a time, as for reconciles: what a node's agent must do
 * is read from the task rows when the job runs, so duplicates collapse and a lost job is redone
 * by the sweep.
 */
export const dispatchKey = (nodeId: string, part: DispatchPart) => `dispatch:${part}:node:${nodeId}`;

/** The provision job of a machine for one operation; repeated requests collapse. */
export const provisionJobId = (machineId: string, operation: string) => `provision-${operation}-${machineId}`;

/** The reason the sweep gives its reconciles (they leave dispatch of open work to the sweep). */
export const SWEEP_REASON = "sweep";

/**
 * Set (with a lifetime of one sweep interval) when a service has been reconciled: the periodic
 * sweep passes over services reconciled within its last interval.
 */
export const reconciledKey = (prefix: string, serviceId: string) => `${prefix}:reconciled:${serviceId}`;

export interface ReconcileJob {
  serviceId: string;
  reason: string;
}

export interface ProvisionJob {
  machineId: string;
  operation: string;
  params?: Record<string, unknown>;
}

/** Make a node's agent do what its task rows say (start, stop). */
export interface DispatchJob {
  nodeId: string;
  reason: string;
  /** Absent in jobs queued before the split: both. */
  part?: DispatchPart;
}

/** Stop and remove containers no task wants (a removed service's, strays) on one node. */
export interface RemoveContainersJob {
  nodeId: string;
  containers: string[];
  graceMs: number;
}

export type SweepJob = Record<string, never>;

/**
 * One check of every service whose rebalance policy is auto, after nodes joined or came back. A
 * burst of nodes returning collapses into one check (see AUTO_REBALANCE_KEY).
 */
export interface AutoRebalanceJob {
  reason: string;
}

/** While a check is queued, more ready nodes add nothing: the check reads every service when it runs. */
export const AUTO_REBALANCE_KEY = "rebalance:auto";
