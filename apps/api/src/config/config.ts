import { homedir } from "node:os";
import { join } from "node:path";
import { parseReplicaUrls } from "@flotilla/core";
import { z } from "zod";
import { parseDatabaseUrl, parseRedisUrl, type DatabaseTarget, type RedisTarget } from "./connection-urls";

export type Role = "api" | "worker" | "all";

// Several hosts (Postgres) or Sentinels (Redis) make URLs the WHATWG parser refuses: see connection-urls.ts.
const parsedWith = <T>(parse: (v: string) => T) =>
  z.string().transform((v, ctx) => {
    try {
      return { raw: v, target: parse(v) };
    } catch (e) {
      ctx.addIssue({ code: "custom", message: (e as Error).message.replace(/^(DATABASE|REDIS)_URL:? ?/, "") });
      return z.NEVER;
    }
  });

/** `host:port` or `[v6]:port`, comma-separated; empty means none. */
const listenList = z
  .string()
  .default("")
  .transform((v, ctx) => {
    const out: { host: string; port: number }[] = [];
    for (const item of v
      .split(",")
      .map((s) => s.trim())
      .filter(Boolean)) {
      const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:\s]+)):(\d{1,5})$/.exec(item);
      const port = Number(m?.[3]);
      if (!m || port < 1 || port > 65535) {
        ctx.addIssue({ code: "custom", message: `must be host:port entries separated by commas, got "${item}"` });
        return z.NEVER;
      }
      out.push({ host: m[1] ?? m[2], port });
    }
    return out;
  });

const schema = z.object({
  DATABASE_URL: parsedWith(parseDatabaseUrl),
  REDIS_URL: parsedWith(parseRedisUrl),
  FLOTILLA_HOST: z.string().min(1).default("127.0.0.1"),
  FLOTILLA_PORT: z.coerce.number().int().min(0).max(65535).default(8080),
  FLOTILLA_ROLE: z.enum(["api", "worker", "all"]).default("all"),
  FLOTILLA_LOG_LEVEL: z.enum(["error", "warn", "log", "debug", "verbose"]).default("log"),
  FLOTILLA_CONFIG_DIR: z.string().min(1).optional(),
  FLOTILLA_SWEEP_INTERVAL_MS: z.coerce.number().int().min(1000).default(30_000),
  FLOTILLA_QUEUE_PREFIX: z
    .string()
    .regex(/^[a-z0-9_-]+$/i, "letters, digits, - and _ only")
    .default("flotilla"),
  FLOTILLA_HEARTBEAT_MS: z.coerce.number().int().min(50).max(600_000).default(5_000),
  // The agents' retry back-off cap (agent/src/heartbeat: 60 s unless configured otherwise).
  FLOTILLA_AGENT_MAX_BACKOFF_MS: z.coerce.number().int().min(0).max(3_600_000).default(60_000),
  // Beyond this many nodes × (1000 / FLOTILLA_HEARTBEAT_MS), the period agents are told grows
  // (libs/core heartbeatPeriodMs): 1,000 nodes keep 5 s, 5,000 beat every 25 s.
  FLOTILLA_MAX_HEARTBEATS_PER_S: z.coerce.number().int().min(1).max(100_000).default(200),
  // Under load a connection is held for a turn of the event loop besides the query itself, so
  // 10 capped a busy API (1,000 agents beating) near 250 statements a second.
  FLOTILLA_DB_POOL_SIZE: z.coerce.number().int().min(1).max(500).default(20),
  // 0: every listing request reads (shared among concurrent ones); nothing kept.
  FLOTILLA_LISTING_MAX_AGE_MS: z.coerce.number().int().min(0).max(60_000).default(1_000),
  FLOTILLA_AGENT_LISTEN: listenList,
  FLOTILLA_SECRETS_KEY_FILE: z.string().min(1).optional(),
  FLOTILLA_CONSOLE_DIR: z.string().min(1).optional(),
  FLOTILLA_PUBLIC_URLS: z
    .string()
    .default("")
    .transform((v, ctx) => {
      try {
        return parseReplicaUrls(v, "FLOTILLA_PUBLIC_URLS");
      } catch (e) {
        ctx.addIssue({ code: "custom", message: (e as Error).message.replace(/^FLOTILLA_PUBLIC_URLS: /, "") });
        return z.NEVER;
      }
    }),
});

export interface AppConfig {
  databaseUrl: string;
  /** The Postgres hosts to try, in order, and whether only a primary will do. */
  database: DatabaseTarget;
  redisUrl: string;
  /** One Redis server, or the Sentinels that name the master. */
  redis: RedisTarget;
  host: string;
  port: number;
  role: Role;
  logLevel: "error" | "warn" | "log" | "debug" | "verbose";
  /** Where the first start writes the admin token for `ctl` (mode 0600). */
  configDir: string;
  sweepIntervalMs: number;
  /** Redis prefix of the queues and of the event channel: one control plane per prefix. */
  queuePrefix: string;
  /** How often agents beat; a node that misses 3 in a row is marked down. */
  heartbeatMs: number;
  /**
   * The longest agents wait between heartbeat retries: after an outage no node is declared down
   * before its agent had that long (plus a heartbeat window) to reach the control plane again.
   */
  agentMaxBackoffMs: number;
  /** The heartbeats per second the control plane is sized for: the period stretches beyond it. */
  maxHeartbeatsPerSecond: number;
  /** Postgres connections per process. */
  dbPoolSize: number;
  /**
   * The longest an API process answers a listing (services, nodes, tasks) from its copy: what
   * changes without an event (a heartbeat's time) or an event lost on the way shows within it.
   * A change with an event retires the copy at once (common/listing-views.ts).
   */
  listingMaxAgeMs: number;
  /**
   * Extra addresses where machines' agents reach the API (e.g. the netns bridge's gateway),
   * relayed to the API's own listener; bound as soon as each address exists on this host.
   */
  agentListen: { host: string; port: number }[];
  /**
   * The key that encrypts secrets and configs in the database (AES-256-GCM): a file kept outside
   * it, mode 0600, created on first use. Default: secrets.key in the config dir.
   */
  secretsKeyFile: string;
  /**
   * Every API replica's URL as users reach it (FLOTILLA_PUBLIC_URLS, comma-separated): listed at
   * `GET /api/v1/control-plane` for the console and ctl to fail over along, and the origins
   * allowed to call this replica from a browser (a console served by another replica).
   */
  publicUrls: string[];
  /**
   * The web console's build served at `/` (FLOTILLA_CONSOLE_DIR); default: the repository's
   * apps/console/dist. The control-plane bundle's launcher points it at the bundle's copy.
   */
  consoleDir?: string;
}

export class ConfigError extends Error {}

/** The user config dir `ctl` reads too: $FLOTILLA_CONFIG_DIR, else $XDG_CONFIG_HOME/flotilla. */
export function defaultConfigDir(env: NodeJS.ProcessEnv): string {
  return env.FLOTILLA_CONFIG_DIR || join(env.XDG_CONFIG_HOME || join(env.HOME || homedir(), ".config"), "flotilla");
}

/** Validates the environment once at start-up; every problem is named in one message. */
export function loadConfig(env: NodeJS.ProcessEnv, roleOverride?: string): AppConfig {
  const parsed = schema.safeParse({ ...env, ...(roleOverride ? { FLOTILLA_ROLE: roleOverride } : {}) });
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => {
      const key = i.path.join(".");
      const given = (env as Record<string, string | undefined>)[key];
      const what = given === undefined || given === "" ? "is required" : i.message;
      return `${key === "FLOTILLA_ROLE" && roleOverride ? "role argument" : key} ${what}`;
    });
    throw new ConfigError(`invalid configuration: ${problems.join("; ")}`);
  }
  const c = parsed.data;
  return {
    databaseUrl: c.DATABASE_URL.raw,
    database: c.DATABASE_URL.target,
    redisUrl: c.REDIS_URL.raw,
    redis: c.REDIS_URL.target,
    host: c.FLOTILLA_HOST,
    port: c.FLOTILLA_PORT,
    role: c.FLOTILLA_ROLE,
    logLevel: c.FLOTILLA_LOG_LEVEL,
    configDir: c.FLOTILLA_CONFIG_DIR ?? defaultConfigDir(env),
    sweepIntervalMs: c.FLOTILLA_SWEEP_INTERVAL_MS,
    queuePrefix: c.FLOTILLA_QUEUE_PREFIX,
    heartbeatMs: c.FLOTILLA_HEARTBEAT_MS,
    agentMaxBackoffMs: c.FLOTILLA_AGENT_MAX_BACKOFF_MS,
    maxHeartbeatsPerSecond: c.FLOTILLA_MAX_HEARTBEATS_PER_S,
    dbPoolSize: c.FLOTILLA_DB_POOL_SIZE,
    listingMaxAgeMs: c.FLOTILLA_LISTING_MAX_AGE_MS,
    agentListen: c.FLOTILLA_AGENT_LISTEN,
    secretsKeyFile: c.FLOTILLA_SECRETS_KEY_FILE ?? join(c.FLOTILLA_CONFIG_DIR ?? defaultConfigDir(env), "secrets.key"),
    publicUrls: c.FLOTILLA_PUBLIC_URLS,
    ...(c.FLOTILLA_CONSOLE_DIR ? { consoleDir: c.FLOTILLA_CONSOLE_DIR } : {}),
  };
}

export const APP_CONFIG = Symbol("APP_CONFIG");
