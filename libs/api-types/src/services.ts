export type ServiceMode = { kind: "replicated"; replicas: number } | { kind: "global" };
export type PortProtocol = "tcp" | "udp";
/** ingress: every node answers on the published port (routing mesh); host: only nodes running a task. */
export type PublishMode = "ingress" | "host";
/** Ingress ports: cluster (any task, default) or local (only the receiving node's tasks; the client's address is kept). */
export type IngressTraffic = "cluster" | "local";

export interface PortConfig {
  published: number;
  target: number;
  protocol: PortProtocol;
  /** Absent in specs written before publish modes existed: ingress. */
  mode?: PublishMode;
  /** Absent: cluster. */
  traffic?: IngressTraffic;
}

export interface ResourceAmounts {
  /** 1 CPU = 1e9. */
  nanoCpus: number;
  memoryBytes: number;
}

export interface UpdateConfig {
  parallelism: number;
  delayMs: number;
  monitorMs: number;
  failureAction: "pause" | "continue" | "rollback";
  maxFailureRatio: number;
  order: "stop-first" | "start-first";
}

export interface RestartPolicy {
  condition: "none" | "on-failure" | "any";
  delayMs: number;
  maxAttempts: number;
  windowMs: number;
}

export interface Placement {
  constraints: string[];
  preferences: { spread: string }[];
  maxReplicasPerNode?: number;
}

/** A filesystem in each task: a node's named volume, a node's path (bind, admin only) or a tmpfs. */
export interface Mount {
  type: "volume" | "bind" | "tmpfs";
  /** Volume name or the node's absolute path; absent for tmpfs. */
  source?: string;
  /** Absolute path in the container. */
  target: string;
  readOnly: boolean;
  tmpfsSizeBytes?: number;
}

/** A stored secret or config given to each task as a read-only file (the value is never in the spec). */
export interface SecretReference {
  /** The secret's or config's name. */
  source: string;
  /** Absolute path in the container (secrets: /run/secrets/SOURCE by default; configs: /SOURCE). */
  target: string;
  /** Numeric owner and group of the file. */
  uid: string;
  gid: string;
  /** Permission bits (0o444 by default). */
  mode: number;
}

/** A reference as requests give it: only the source is required. */
export type SecretReferenceInput = Pick<SecretReference, "source"> & Partial<Omit<SecretReference, "source">>;

/**
 * The tasks' health check (docker's HealthConfig): a task with one runs only once healthy, and
 * an unhealthy task fails and is replaced. Zeros and an empty `test` take the image's HEALTHCHECK.
 */
export interface HealthCheck {
  /** [] the image's; ["NONE"] none; ["CMD", program, ...args]; ["CMD-SHELL", command] (needs /bin/sh in the image). */
  test: string[];
  intervalMs: number;
  timeoutMs: number;
  startPeriodMs: number;
  retries: number;
}

/** A service's desired state, every field filled in by the API. */
export interface ServiceSpec {
  name: string;
  image: string;
  command: string[];
  args: string[];
  env: Record<string, string>;
  labels: Record<string, string>;
  containerLabels: Record<string, string>;
  hostname: string;
  user: string;
  workdir: string;
  mode: ServiceMode;
  resources: { reservations: ResourceAmounts; limits: ResourceAmounts & { pids?: number } };
  ports: PortConfig[];
  mounts: Mount[];
  secrets: SecretReference[];
  configs: SecretReference[];
  healthcheck: HealthCheck;
  placement: Placement;
  restartPolicy: RestartPolicy;
  updateConfig: UpdateConfig;
  rollbackConfig: UpdateConfig;
  stopGracePeriodMs: number;
  /** "auto": rebalanced whenever a node joins or comes back; "manual": only on `rebalance: true`. */
  rebalancePolicy: "manual" | "auto";
  /** Overlay networks the tasks join; `target` is the network's id (names are resolved on create/update). */
  networks: NetworkAttachment[];
  /** vip: the name resolves to one virtual IP per network; dnsrr: to the tasks' addresses. */
  endpointMode: "vip" | "dnsrr";
}

/** A service's attachment to an overlay network. */
export interface NetworkAttachment {
  target: string;
  /** Extra DNS names of the service on this network. */
  aliases: string[];
}

/** The service's virtual IP on one of its networks. */
export interface ServiceVirtualIp {
  networkId: string;
  network: string;
  addr: string;
}

export type UpdateStatus = "updating" | "paused" | "completed" | "rollback-started" | "rollback-paused" | "rollback-completed";

/** Progress of a rolling update or rollback. */
export interface UpdateState {
  status: UpdateStatus | (string & {});
  targetVersion: number;
  /** Older task versions with the same spec: their tasks are not replaced. */
  equivalentVersions?: readonly number[];
  startedAt: number;
  completedAt?: number;
  /** For people: "updating: 3/10 tasks". */
  message: string;
  /** A rebalance (`--rebalance`): the tasks it moves, once the first reconcile chose them. */
  rebalance?: boolean;
  moving?: readonly string[];
}

/** `GET /api/v1/services`, `GET /api/v1/services/{id}`, and the answer of every change. */
export interface ServiceView {
  id: string;
  name: string;
  mode: "replicated" | "global";
  /** Replicated: the replicas asked for; global: the tasks wanted (one per eligible node). */
  desired: number;
  running: number;
  version: number;
  /** The version whose spec the tasks should run (changes that only scale keep it). */
  taskVersion: number;
  spec: ServiceSpec;
  previousSpec: ServiceSpec | null;
  updateState: UpdateState | null;
  /** The registry whose credentials the service's pulls use (`--with-registry-auth`); null: anonymous pulls. */
  registryAuth: { serverAddress: string } | null;
  /** One per network of the service (none with endpoint mode dnsrr). */
  virtualIps: ServiceVirtualIp[];
  createdAt: string;
  updatedAt: string;
}

/** Registry credentials for a service's pulls, as `docker login` keeps them; stored encrypted, never shown again. */
export interface RegistryAuth {
  username: string;
  password: string;
  /** The registry they are for (`host[:port]`). */
  serverAddress: string;
}

type DeepPartial<T> = { [K in keyof T]?: T[K] extends (infer U)[] ? U[] : T[K] extends object ? DeepPartial<T[K]> : T[K] };

/** `PATCH /api/v1/services/{id}`: any spec field; `replicas` alone scales. */
export type ServiceUpdateRequest = Omit<
  DeepPartial<ServiceSpec>,
  "name" | "ports" | "mode" | "mounts" | "secrets" | "configs" | "networks"
> & {
  /** Replaces the list; `target` is a network's name or id. */
  networks?: { target: string; aliases?: string[] }[];
  ports?: { published: number; target: number; protocol?: PortProtocol; mode?: PublishMode; traffic?: IngressTraffic }[];
  /** Replaces the list; `readOnly` defaults to false. */
  mounts?: (Omit<Mount, "readOnly"> & { readOnly?: boolean })[];
  /** Replace the lists; only `source` is required, a relative target is a file name. */
  secrets?: SecretReferenceInput[];
  configs?: SecretReferenceInput[];
  mode?: ServiceMode;
  /** Shorthand for mode {kind: replicated, replicas}. */
  replicas?: number;
  /** PATCH only: replace every task even when nothing changed. */
  force?: boolean;
  /** Credentials for the service's image pulls (`--with-registry-auth`); on PATCH, replaces the stored ones. */
  registryAuth?: RegistryAuth;
  /** PATCH only, alone: move tasks so the spread matches what the scheduler would choose now. */
  rebalance?: boolean;
};

/** `POST /api/v1/services`. */
export type ServiceCreateRequest = ServiceUpdateRequest & { name: string; image: string };
