/**
 * What the agent keeps about a container (`containers/<id>/config.json`) and the validated,
 * normalized pieces of a create request. Docker-shaped where Docker's shape is what we return.
 */

import type { HealthConfig, HealthState } from "../health/health-config";
import type { TaskFileRef } from "./task-files";
export type { HealthState };

/** "user": HostConfig.NetworkMode names a user-defined network (the first of `networks`). */
export type NetworkModeName = "bridge" | "host" | "none" | "user";

/** A user-defined network the container is connected to (NetworkingConfig, network connect). */
export interface ContainerNetworkConfig {
  networkId: string;
  /** The network's name when connected, for inspect's Networks keys. */
  name: string;
  aliases: string[];
  /** `--ip`; "" for any free address. */
  ipv4Address: string;
  /** "overlay": a network of the control plane's table (agent/src/overlay); absent: a user-defined bridge network. */
  driver?: "overlay";
}

/** The container's interface on a user network while it runs. */
export interface UserNetworkInfo {
  networkId: string;
  networkName: string;
  ipAddress: string;
  prefixLen: number;
  gateway: string;
  macAddress: string;
  aliases: string[];
}

export type PortProtocol = "tcp" | "udp";

/** One published port: HostConfig.PortBindings after validation. hostPort 0 = any free port. */
export interface PortBinding {
  containerPort: number;
  protocol: PortProtocol;
  hostIp: string;
  hostPort: number;
}

/** A mount of the container, as the shim will be asked for it. */
export type MountSpec =
  | {
      type: "bind";
      source: string;
      target: string;
      readOnly: boolean;
      /** Binds create a missing source; Mounts refuse. */ createSource: boolean;
    }
  | { type: "volume"; name: string; target: string; readOnly: boolean; anonymous: boolean }
  | { type: "tmpfs"; target: string; sizeBytes?: number };

export type RestartPolicyName = "no" | "always" | "unless-stopped" | "on-failure";

export interface RestartPolicy {
  Name: RestartPolicyName | "";
  MaximumRetryCount: number;
}

/** The `Config` object of container inspect. */
export interface ContainerConfig {
  Hostname: string;
  Domainname: string;
  User: string;
  AttachStdin: boolean;
  AttachStdout: boolean;
  AttachStderr: boolean;
  ExposedPorts?: Record<string, object>;
  Tty: boolean;
  OpenStdin: boolean;
  StdinOnce: boolean;
  Env: string[];
  Cmd: string[] | null;
  Image: string;
  Volumes: Record<string, object> | null;
  WorkingDir: string;
  Entrypoint: string[] | null;
  OnBuild: string[] | null;
  Labels: Record<string, string>;
  StopSignal?: string;
  StopTimeout?: number;
  Healthcheck?: HealthConfig;
}

/** The `HostConfig` of container inspect: the subset we honour, normalized. */
export interface HostConfig {
  Binds: string[] | null;
  NetworkMode: string;
  PortBindings: Record<string, Array<{ HostIp: string; HostPort: string }>>;
  RestartPolicy: RestartPolicy;
  AutoRemove: boolean;
  Mounts?: unknown[];
  Memory: number;
  MemorySwap: number;
  NanoCpus: number;
  CpuShares: number;
  CpuPeriod: number;
  CpuQuota: number;
  PidsLimit: number | null;
  ReadonlyRootfs: boolean;
  Tmpfs?: Record<string, string>;
  Privileged: false;
  PublishAllPorts: boolean;
  /** Absent on containers created before these were honoured. */
  CapAdd?: string[] | null;
  CapDrop?: string[] | null;
  Dns?: string[];
  DnsSearch?: string[];
  DnsOptions?: string[];
  ExtraHosts?: string[] | null;
  SecurityOpt?: string[] | null;
  LogConfig: { Type: "json-file"; Config: Record<string, string> };
}

export type ContainerStatus = "created" | "running" | "restarting" | "removing" | "exited" | "dead";

/** Observed state; what `State` in inspect is made from. */
export interface ContainerState {
  status: ContainerStatus;
  pid: number;
  shimPid: number;
  exitCode: number;
  oomKilled: boolean;
  error: string;
  startedAt: string | null;
  finishedAt: string | null;
  /** Frozen by docker pause (still "running"). */
  paused?: boolean;
  /** The health check's state while running, when the container has one. */
  health?: HealthState;
}

/** What the network module handed out on attach (bridge), or null. */
export interface NetworkInfo {
  mode: NetworkModeName;
  ipAddress: string;
  gateway: string;
  macAddress: string;
  prefixLen: number;
  ports: PortBinding[];
  /** The namespace the container runs in (network connect plugs interfaces into it). */
  netnsPath?: string;
  /** Interfaces on user-defined networks (the first is the primary one in "user" mode). */
  user?: UserNetworkInfo[];
}

/** The validated create request: Docker shapes for inspect plus what the runtime needs. */
export interface ContainerSpec {
  /** The argv: Path + Args. */
  path: string;
  args: string[];
  config: ContainerConfig;
  hostConfig: HostConfig;
  networkMode: NetworkModeName;
  /** User networks by name as asked (resolved to ids at create); the primary first in "user" mode. */
  networkRequests: Array<{ name: string; aliases: string[]; ipv4Address: string }>;
  ports: PortBinding[];
  /** Volume mounts name null where the volume is anonymous (named at create). */
  mounts: MountSpec[];
}

/** Everything persisted per container: its spec, identity and state. */
export interface ContainerRecord extends Omit<ContainerSpec, "networkRequests"> {
  id: string;
  /** With the leading slash, as Docker shows it. */
  name: string;
  created: string;
  /** The image as the user named it. */
  image: string;
  imageId: string;
  state: ContainerState;
  restartCount: number;
  /** Stopped by the user: restart policies (but "always" on agent start) leave it alone. */
  manualStop: boolean;
  network: NetworkInfo | null;
  /** User networks the container is connected to; absent in records made before they existed. */
  networks?: ContainerNetworkConfig[];
  /** Where its secret and config files go (task-files.ts holds them); absent: none. */
  files?: TaskFileRef[];
}
