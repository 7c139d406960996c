/**
 * API replicas of the control plane that Flotilla itself installs on manager machines
 * (`ctl node promote --control-plane`): whether one may be added, the settings it runs with, and
 * how the replicas' URLs join the lists the operator configured. Pure: the API reads the rows and
 * the files, calls these, and acts.
 */
import { ConflictError, InvalidError, UnavailableError } from "./errors";

export const REPLICA_STATES = ["installing", "running", "removing", "failed"] as const;
export type ReplicaState = (typeof REPLICA_STATES)[number];

/** The port a replica listens on when the operator sets none (FLOTILLA_REPLICA_PORT). */
export const DEFAULT_REPLICA_PORT = 8080;

/** What the add decision reads. */
export interface ReplicaAddInput {
  node: { hostname: string; role: "MANAGER" | "WORKER" };
  /** The node's machine, when Flotilla made it (a replica is installed over the machine's SSH). */
  machine: { name: string; state: string; ip: string | null } | null;
  /** The machine's replica row, if any. */
  existing: { state: string } | null;
  /** The control-plane bundle (FLOTILLA_CONTROL_PLANE_BUNDLE) exists on this host. */
  bundle: { path: string; present: boolean };
  /** Postgres and Redis as the machine reaches them (replicaConnection's results). */
  databaseUrl: string;
  redisUrl: string;
}

/**
 * Refuses, with the reason and the way out, a replica that cannot be installed: a worker node, a
 * node no machine of ours runs, a machine not ready, one already there, no bundle.
 */
export function checkReplicaAdd(i: ReplicaAddInput): { ip: string } {
  if (i.node.role !== "MANAGER")
    throw new ConflictError(
      `node ${i.node.hostname} is a worker: only managers run the control plane (ctl node promote --control-plane does both)`,
      {
        field: "role",
      },
    );
  if (!i.machine)
    throw new ConflictError(
      `node ${i.node.hostname} is not a machine Flotilla made (ctl machine create): a control-plane replica is installed over the machine's SSH`,
      { field: "node" },
    );
  if (i.machine.state !== "READY" || !i.machine.ip)
    throw new ConflictError(`machine ${i.machine.name} is ${i.machine.state.toLowerCase()}: a control-plane replica needs it ready`, {
      state: i.machine.state,
    });
  if (i.existing && i.existing.state !== "failed")
    throw new ConflictError(`node ${i.node.hostname} already runs a control-plane replica (${i.existing.state})`, {
      state: i.existing.state,
    });
  if (!i.bundle.present)
    throw new UnavailableError(
      `the control-plane bundle ${i.bundle.path} is missing: build it with npm run build:control-plane-bundle (or set FLOTILLA_CONTROL_PLANE_BUNDLE)`,
      { field: "FLOTILLA_CONTROL_PLANE_BUNDLE" },
    );
  return { ip: i.machine.ip };
}

const LOOPBACK = /^(127\.\d+\.\d+\.\d+|::1|localhost|0\.0\.0\.0|::)$/i;

/**
 * Postgres or Redis as a machine reaches it: the operator's override (FLOTILLA_REPLICA_DATABASE_URL,
 * FLOTILLA_REPLICA_REDIS_URL) when set, else this process's own URL, unless that names loopback
 * (127.0.0.1 on a machine is the machine itself, and a netns machine reaches its host by the
 * bridge's gateway address): then the override is required.
 */
export function replicaConnection(
  what: "Postgres" | "Redis",
  own: { url: string; hosts: readonly string[] },
  override: string | undefined,
  setting: string,
): string {
  if (override) return override;
  const local = own.hosts.filter((h) => LOOPBACK.test(h.replace(/^\[|\]$/g, "")));
  if (local.length)
    throw new InvalidError(
      `${what} is configured at ${local.join(", ")}, which a machine cannot reach: set ${setting} to ${what} as machines reach it (a netns machine reaches this host by its bridge's gateway address)`,
      { field: setting },
    );
  return own.url;
}

/** The replica's URL (users and agents alike: it listens on the machine's address). */
export function replicaUrl(ip: string, port: number): string {
  return `http://${ip.includes(":") ? `[${ip}]` : ip}:${port}`;
}

/** A replica as the lists read it. */
export interface ReplicaRow {
  apiUrl: string;
  agentApiUrl: string;
  state: string;
}

/**
 * The replica lists every process serves (`GET /api/v1/control-plane`, heartbeat replies, CORS):
 * the configured URLs first (in their order), then the running replicas', without duplicates. A
 * replica being installed or removed is left out: clients would fail over to a URL that does not
 * answer yet, or no longer will.
 */
export function mergeReplicaUrls(
  configured: { apiUrls: readonly string[]; agentApiUrls: readonly string[] },
  replicas: readonly ReplicaRow[],
): { apiUrls: string[]; agentApiUrls: string[] } {
  const running = replicas.filter((r) => r.state === "running");
  const merge = (first: readonly string[], more: string[]) => [...new Set([...first, ...more])];
  return {
    apiUrls: merge(
      configured.apiUrls,
      running.map((r) => r.apiUrl),
    ),
    agentApiUrls: configured.agentApiUrls.length
      ? merge(
          configured.agentApiUrls,
          running.map((r) => r.agentApiUrl),
        )
      : [],
  };
}

/** What the replica's settings are made of. */
export interface ReplicaSettingsInput {
  databaseUrl: string;
  redisUrl: string;
  port: number;
  queuePrefix: string;
  /** The operator's lists, passed on as they are: the replica adds the registered replicas itself. */
  publicUrls: readonly string[];
  agentApiUrls: readonly string[];
  heartbeatMs: number;
  paths: { configDir: string; dataDir: string; secretsKeyFile: string };
}

/**
 * The replica's environment file. It runs the `api` role alone: the workers provision machines
 * with the SSH keys and the CA key, which stay on the hosts that have them.
 */
export function replicaSettings(i: ReplicaSettingsInput): Record<string, string> {
  return {
    DATABASE_URL: i.databaseUrl,
    REDIS_URL: i.redisUrl,
    FLOTILLA_ROLE: "api",
    FLOTILLA_HOST: "0.0.0.0",
    FLOTILLA_PORT: String(i.port),
    FLOTILLA_QUEUE_PREFIX: i.queuePrefix,
    FLOTILLA_HEARTBEAT_MS: String(i.heartbeatMs),
    FLOTILLA_CONFIG_DIR: i.paths.configDir,
    FLOTILLA_DATA_DIR: i.paths.dataDir,
    FLOTILLA_SECRETS_KEY_FILE: i.paths.secretsKeyFile,
    ...(i.publicUrls.length ? { FLOTILLA_PUBLIC_URLS: i.publicUrls.join(",") } : {}),
    ...(i.agentApiUrls.length ? { FLOTILLA_AGENT_API_URL: i.agentApiUrls.join(",") } : {}),
  };
}
