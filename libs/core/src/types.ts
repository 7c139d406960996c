// Domain types shared by every decision in libs/core. Plain data: adapters load them from the
// database (Prisma BigInt columns become numbers, which hold any realistic byte or nano-CPU count
// exactly) and the pure functions never mutate them.
import type { SecretReference, SecretReferenceInput } from "./service-secrets";
import type { EndpointMode } from "./overlay-table";

/** 1 CPU = 1e9 nano-CPUs, the unit of the Docker Engine API. */
export const NANO_CPUS_PER_CPU = 1_000_000_000;

/** Replicated services run `replicas` tasks in numbered slots; global services one task per eligible node. */
export type ServiceMode = { readonly kind: "replicated"; readonly replicas: number } | { readonly kind: "global" };

/** An amount of CPU and memory: what a task reserves or a node offers. */
export interface ResourceAmounts {
  /** CPU in billionths of a CPU (0.5 CPU = 500_000_000). */
  readonly nanoCpus: number;
  /** Memory in bytes. */
  readonly memoryBytes: number;
}

/** Hard limits applied to the container's cgroup. 0 means "no limit". */
export interface ResourceLimits extends ResourceAmounts {
  /** Maximum number of processes in the container; absent or 0 means no limit. */
  readonly pids?: number;
}

/** Reservations are what the scheduler accounts for; limits are enforced by the shim. */
export interface ServiceResources {
  readonly reservations: ResourceAmounts;
  readonly limits: ResourceLimits;
}

export type PortProtocol = "tcp" | "udp";

/**
 * How a port is published, as in swarm. `ingress` (the default): every node answers on
 * `published` and forwards to any of the service's tasks, wherever it runs (the routing mesh), so
 * a node can run several tasks and a published port is the whole cluster's. `host`: only a node
 * running a task answers, on `published` itself, so one task per node.
 */
export type PublishMode = "ingress" | "host";

/**
 * Which tasks answer an ingress port on a node. `cluster` (the default, absent in specs): any
 * task, wherever it runs. `local`: only the tasks on the node that received the connection, and
 * the task sees the client's own address (Kubernetes' externalTrafficPolicy: Local); a node
 * without one refuses the connection.
 */
export type IngressTraffic = "cluster" | "local";

/** A published port: `published` (on the nodes) → `target` in the container. */
export interface PortConfig {
  readonly published: number;
  readonly target: number;
  readonly protocol: PortProtocol;
  readonly mode: PublishMode;
  /** Ingress ports only; absent means cluster. */
  readonly traffic?: IngressTraffic;
}

/** A published port as users write it: protocol tcp and mode ingress unless given. */
export interface PortConfigInput {
  readonly published: number;
  readonly target: number;
  readonly protocol?: PortProtocol;
  readonly mode?: PublishMode;
  readonly traffic?: IngressTraffic;
}

/** Where a task's published port answers on its node (a dynamic host port for ingress ports). */
export interface TaskEndpoint {
  readonly target: number;
  readonly protocol: PortProtocol;
  readonly hostPort: number;
}

/** Spread tasks evenly over the values of a node attribute, e.g. `{ spread: "node.labels.zone" }`. */
export interface PlacementPreference {
  readonly spread: string;
}

/** Where tasks may run. */
export interface Placement {
  /** Constraint expressions such as `node.labels.zone==a`, all of which must hold. */
  readonly constraints: readonly string[];
  /** Applied in order: the first spreads over its values, the next within each value, and so on. */
  readonly preferences: readonly PlacementPreference[];
  /** At most this many tasks of the service per node; absent or 0 means no limit. Replicated mode only. */
  readonly maxReplicasPerNode?: number;
}

export type RestartCondition = "none" | "on-failure" | "any";

/** What happens when a task's container exits on its own. */
export interface RestartPolicy {
  readonly condition: RestartCondition;
  /** Wait this long after the exit before starting a replacement. */
  readonly delayMs: number;
  /** Give up after this many restarts (within `windowMs` if set); 0 means unlimited. */
  readonly maxAttempts: number;
  /** Window in which restarts are counted; 0 means since the service's spec version was created. */
  readonly windowMs: number;
}

export type FailureAction = "pause" | "continue" | "rollback";
export type UpdateOrder = "stop-first" | "start-first";

/** How a rolling update (or a rollback) replaces tasks. */
export interface UpdateConfig {
  /** Tasks replaced per batch; 0 means all at once. */
  readonly parallelism: number;
  /** Pause between one batch running and the next batch starting. */
  readonly delayMs: number;
  /** After a new task starts, a failure within this period counts against the update. */
  readonly monitorMs: number;
  /** What to do once the failure ratio exceeds `maxFailureRatio`. `rollback` is not valid in a rollback config. */
  readonly failureAction: FailureAction;
  /** Fraction (0..1) of the service's tasks allowed to fail during the update. */
  readonly maxFailureRatio: number;
  /** stop-first: stop the old task, then start the new one; start-first: overlap them briefly. */
  readonly order: UpdateOrder;
}

export type MountType = "volume" | "bind" | "tmpfs";

/**
 * A filesystem mounted into each task's container, as swarm's `--mount`. A `volume` is a named
 * volume of the task's node (created there on first use, kept when the task is replaced, so a
 * task that lands on the same node finds its data); a `bind` is a path of the node's own
 * filesystem; a `tmpfs` lives in the task's memory and goes with it.
 */
export interface Mount {
  readonly type: MountType;
  /** The volume's name (volume) or the node's absolute path (bind); absent for tmpfs. */
  readonly source?: string;
  /** Absolute path in the container. */
  readonly target: string;
  readonly readOnly: boolean;
  /** tmpfs only: its size limit in bytes; absent means the kernel's default (half the memory). */
  readonly tmpfsSizeBytes?: number;
}

/**
 * The tasks' health check, as docker's HealthConfig (`--health-*`): it runs inside the container
 * every interval; `retries` failures in a row make the task unhealthy (failures during the start
 * period do not count). A task with a health check is RUNNING for the orchestrator only once
 * healthy; an unhealthy task fails and is replaced. Zero values and an empty `test` take the
 * image's HEALTHCHECK (then docker's defaults: 30 s, 30 s, 0 s, 3).
 */
export interface HealthCheck {
  /**
   * [] for the image's; ["NONE"] disables the image's; ["CMD", program, ...args] runs a program;
   * ["CMD-SHELL", command] runs the command with the image's /bin/sh.
   */
  readonly test: readonly string[];
  readonly intervalMs: number;
  readonly timeoutMs: number;
  readonly startPeriodMs: number;
  readonly retries: number;
}

/**
 * A service as the user wants it: the desired state, written only by users (through the API).
 * Every field is present; build one from user input with `normalizeServiceSpec`.
 */
export interface ServiceSpec {
  readonly name: string;
  readonly image: string;
  /** Overrides the image's entrypoint when non-empty. */
  readonly command: readonly string[];
  /** Overrides the image's command when non-empty. */
  readonly args: readonly string[];
  readonly env: Readonly<Record<string, string>>;
  readonly labels: Readonly<Record<string, string>>;
  /** Labels of the tasks' containers only (the service's `labels` go on them too; these win). */
  readonly containerLabels: Readonly<Record<string, string>>;
  /** The containers' host name; "" for docker's default (the container id). */
  readonly hostname: string;
  /** user[:group] (names or ids) the command runs as; "" for the image's. */
  readonly user: string;
  /** Absolute working directory of the command; "" for the image's. */
  readonly workdir: string;
  readonly mode: ServiceMode;
  readonly resources: ServiceResources;
  readonly ports: readonly PortConfig[];
  readonly mounts: readonly Mount[];
  /** Stored secrets given to each task as files (values are fetched at dispatch, never in the spec). */
  readonly secrets: readonly SecretReference[];
  /** Stored configs given to each task as files. */
  readonly configs: readonly SecretReference[];
  readonly healthcheck: HealthCheck;
  readonly placement: Placement;
  readonly restartPolicy: RestartPolicy;
  readonly updateConfig: UpdateConfig;
  readonly rollbackConfig: UpdateConfig;
  /** Time between SIGTERM and SIGKILL when a task is stopped. */
  readonly stopGracePeriodMs: number;
  /** "auto": rebalanced (as `--rebalance`) whenever a node joins or comes back; "manual": only when asked. */
  readonly rebalancePolicy: RebalancePolicy;
  /** Overlay networks the tasks join; stored with `target` the network's id (the API resolves names). */
  readonly networks: readonly NetworkAttachment[];
  /** "vip": the service's name resolves to one virtual IP per network; "dnsrr": to its tasks' addresses. */
  readonly endpointMode: EndpointMode;
}

/** A service's attachment to an overlay network (as `--network name=N,alias=A`). */
export interface NetworkAttachment {
  /** The network's id once stored; a name or an id as users write it. */
  readonly target: string;
  /** Extra DNS names of the service on this network. */
  readonly aliases: readonly string[];
}

/** An attachment as users write it: no aliases unless given. */
export interface NetworkAttachmentInput {
  readonly target: string;
  readonly aliases?: readonly string[];
}

export type RebalancePolicy = "manual" | "auto";

/** User input for a service: name and image are required, everything else has a default. */
export interface ServiceSpecInput {
  readonly name: string;
  readonly image: string;
  readonly command?: readonly string[];
  readonly args?: readonly string[];
  readonly env?: Readonly<Record<string, string>>;
  readonly labels?: Readonly<Record<string, string>>;
  readonly containerLabels?: Readonly<Record<string, string>>;
  readonly hostname?: string;
  readonly user?: string;
  readonly workdir?: string;
  readonly mode?: ServiceMode;
  readonly resources?: {
    readonly reservations?: Partial<ResourceAmounts>;
    readonly limits?: Partial<ResourceLimits>;
  };
  readonly ports?: readonly PortConfigInput[];
  readonly mounts?: readonly MountInput[];
  readonly secrets?: readonly SecretReferenceInput[];
  readonly configs?: readonly SecretReferenceInput[];
  readonly healthcheck?: Partial<HealthCheck>;
  readonly placement?: Partial<Placement>;
  readonly restartPolicy?: Partial<RestartPolicy>;
  readonly updateConfig?: Partial<UpdateConfig>;
  readonly rollbackConfig?: Partial<UpdateConfig>;
  readonly rebalancePolicy?: RebalancePolicy;
  readonly stopGracePeriodMs?: number;
  readonly networks?: readonly NetworkAttachmentInput[];
  readonly endpointMode?: EndpointMode;
}

/** A mount as users write it: read-write unless `readOnly`. */
export type MountInput = Omit<Mount, "readOnly"> & { readonly readOnly?: boolean };

export type NodeRole = "worker" | "manager";
/** Observed by heartbeats: `unknown` until the first one, `down` after missed ones. */
export type NodeStatus = "ready" | "down" | "unknown";
/** Chosen by the operator: `pause` keeps running tasks but takes no new ones, `drain` moves tasks away. */
export type NodeAvailability = "active" | "pause" | "drain";

/** A host whose agent joined the cluster. */
export interface NodeInfo {
  readonly id: string;
  readonly hostname: string;
  readonly role: NodeRole;
  readonly status: NodeStatus;
  readonly availability: NodeAvailability;
  readonly labels: Readonly<Record<string, string>>;
  /** Total capacity the node offers to tasks. */
  readonly resources: ResourceAmounts;
  /** Where the control plane reaches the agent (host or host:port). */
  readonly address?: string;
}

/**
 * Observed task states in swarmkit's order. The order is the point: a task only moves forward,
 * so a late or repeated report can never undo a newer one.
 */
export const TASK_STATES = [
  "NEW",
  "PENDING",
  "ASSIGNED",
  "ACCEPTED",
  "PREPARING",
  "STARTING",
  "RUNNING",
  "COMPLETE",
  "SHUTDOWN",
  "FAILED",
  "REJECTED",
  "ORPHANED",
] as const;

export type TaskState = (typeof TASK_STATES)[number];

/**
 * NEW … RUNNING, in order: a task on its way to running, or running (`isActive`). The one list
 * every client and query uses; a test checks it against the order above.
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
export type ActiveTaskState = (typeof ACTIVE_TASK_STATES)[number];

/** ACCEPTED … RUNNING: the task's agent has it, so a container may exist for it on its node. */
export const DISPATCHED_TASK_STATES = ["ACCEPTED", "PREPARING", "STARTING", "RUNNING"] as const satisfies readonly ActiveTaskState[];

/** ASSIGNED … RUNNING: a task on a node that a stop must reach (dispatch may be starting it). */
export const STOPPABLE_TASK_STATES = ["ASSIGNED", ...DISPATCHED_TASK_STATES] as const satisfies readonly ActiveTaskState[];

/** What the orchestrator wants of a task; the observed `state` follows it. */
export type DesiredState = "running" | "shutdown";

/** One replica of a service at one spec version. */
export interface Task {
  readonly id: string;
  readonly serviceId: string;
  /** Replicated mode: the replica's slot number (1-based); absent in global mode. */
  readonly slot?: number;
  /** The node the task runs on: set by the scheduler, or at creation in global mode. */
  readonly nodeId?: string;
  /** The service version whose spec this task runs. */
  readonly specVersion: number;
  readonly state: TaskState;
  readonly desiredState: DesiredState;
  /** Epoch milliseconds. */
  readonly createdAt: number;
  /** Epoch milliseconds of the last state change. */
  readonly updatedAt: number;
  /** Epoch milliseconds at which the task was first seen RUNNING. */
  readonly startedAt?: number;
  /** Epoch milliseconds at which the task reached a terminal state. */
  readonly finishedAt?: number;
  readonly exitCode?: number;
  readonly error?: string;
  /** Human explanation of the current state ("no suitable node (...)"). */
  readonly message?: string;
}
