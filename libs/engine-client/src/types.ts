// The subset of the Docker Engine API's shapes that Flotilla uses, with Docker's field names so
// the same agent serves the real `docker` CLI.

/** Labels Flotilla puts on every task container; heartbeats are matched to tasks by them. */
export const TASK_LABELS = {
  serviceId: "flotilla.service.id",
  taskId: "flotilla.task.id",
  slot: "flotilla.slot",
} as const;

/** Mutual TLS material for an agent's TCP endpoint (PEM). */
export interface EngineTls {
  readonly ca: string | Buffer;
  readonly cert: string | Buffer;
  readonly key: string | Buffer;
}

/** Where and how to reach one agent. */
export interface EngineClientOptions {
  /** `http://host:port`, `https://host:port` (use `tls`), or `unix:///path/to/socket`. */
  readonly url: string;
  readonly tls?: EngineTls;
  /** Per-request timeout for non-streaming calls (default 30 s). */
  readonly timeoutMs?: number;
}

/** `POST /containers/create` body (the fields Flotilla sets). */
export interface ContainerCreateBody {
  Image: string;
  Cmd?: string[];
  Entrypoint?: string[];
  Env?: string[];
  Labels?: Record<string, string>;
  Hostname?: string;
  User?: string;
  WorkingDir?: string;
  ExposedPorts?: Record<string, Record<string, never>>;
  /** Docker's HealthConfig: durations in nanoseconds, 0 or absent for the image's. */
  Healthcheck?: { Test?: string[]; Interval?: number; Timeout?: number; StartPeriod?: number; Retries?: number };
  HostConfig?: {
    Memory?: number;
    NanoCpus?: number;
    PidsLimit?: number;
    PortBindings?: Record<string, { HostIp?: string; HostPort: string }[]>;
    Mounts?: {
      Type: "volume" | "bind" | "tmpfs";
      Source?: string;
      Target: string;
      ReadOnly?: boolean;
      TmpfsOptions?: { SizeBytes: number };
    }[];
  };
  StopTimeout?: number;
  /**
   * The container's further networks (its primary one stays the node's default bridge): for each
   * overlay network of its service, the network's id, the task's address and its DNS names.
   */
  NetworkingConfig?: {
    EndpointsConfig: Record<string, { NetworkID: string; IPAMConfig: { IPv4Address: string }; Aliases: string[] }>;
  };
  /**
   * Flotilla agents only: files (a task's secrets and configs) the agent writes on a tmpfs of its
   * own and binds read-only into the container. Never kept in the container's record, so never
   * shown by inspect; `Data` is base64.
   */
  FlotillaFiles?: FlotillaFile[];
}

/** One file of `FlotillaFiles`. */
export interface FlotillaFile {
  /** Absolute path in the container. */
  Target: string;
  Data: string;
  UID: number;
  GID: number;
  Mode: number;
}

/** One entry of `GET /containers/json`. */
export interface ContainerSummary {
  Id: string;
  Names: string[];
  Image: string;
  Labels: Record<string, string>;
  /** created | running | paused | restarting | removing | exited | dead */
  State: string;
  Status: string;
  Created: number;
}

/** `GET /containers/{id}/json` (the fields Flotilla reads). */
export interface ContainerInspect {
  Id: string;
  Name: string;
  Config: { Image: string; Labels: Record<string, string> };
  State: {
    Status: string;
    Running: boolean;
    ExitCode: number;
    OOMKilled: boolean;
    StartedAt: string;
    FinishedAt: string;
    /** Present while the container has a health check. */
    Health?: { Status: "starting" | "healthy" | "unhealthy" };
  };
  /** Published ports: `"80/tcp"` → where it is bound on the host (null when not published). */
  NetworkSettings?: { Ports?: Record<string, { HostIp?: string; HostPort: string }[] | null> };
}

/** One chunk of a container's log, demultiplexed. */
export interface LogChunk {
  readonly stream: "stdout" | "stderr";
  readonly data: Buffer;
}

/**
 * Flotilla agents only (`POST /flotilla/containers/launch`): many task containers created and
 * started in one request, so a node's dispatch is one round trip instead of three per task.
 * Creation is idempotent by name: a container already named so (an earlier attempt's) is the
 * one started and reported, as when a launch is taken over after an unanswered request.
 */
export interface LaunchRequest {
  Launches: { Name: string; Config: ContainerCreateBody }[];
}

/** What a launch batch says of each container, in the request's order. */
export type LaunchResult =
  | {
      Name: string;
      Id: string;
      /** The health check's status right after the start; absent without a health check. */
      Health?: "starting" | "healthy" | "unhealthy";
      Ports?: NonNullable<ContainerInspect["NetworkSettings"]>["Ports"];
    }
  | {
      Name: string;
      /** The HTTP status the single call would have answered (404: no such image; 400: invalid). */
      Status: number;
      Message: string;
      /** The container exists (created, not started): its id, so a retry starts the same one. */
      Id?: string;
    };

/** Whether a launch result is a failure. */
export function launchFailed(r: LaunchResult): r is Extract<LaunchResult, { Status: number }> {
  return "Status" in r;
}
