import { existsSync } from "node:fs";
import { isAbsolute, join, resolve } from "node:path";
import { DEFAULT_REPLICA_PORT } from "@flotilla/core";
import { parseDatabaseUrl, parseRedisUrl } from "../config/connection-urls";

/** The settings of control-plane replicas installed on manager machines (`ctl node promote --control-plane`). */
export interface ReplicaConfig {
  /**
   * FLOTILLA_CONTROL_PLANE_BUNDLE: the control-plane bundle uploaded to the machine (default
   * `<dataDir>/control-plane/flotilla-control-plane.tar.gz` when present, else the repository's
   * `apps/api/dist-bundle/flotilla-control-plane.tar.gz`, what `npm run build:control-plane-bundle` writes).
   */
  bundle: string;
  /** FLOTILLA_REPLICA_DATABASE_URL: Postgres as machines reach it; default DATABASE_URL unless that names loopback. */
  databaseUrl?: string;
  /** FLOTILLA_REPLICA_REDIS_URL: Redis as machines reach it; default REDIS_URL unless that names loopback. */
  redisUrl?: string;
  /** FLOTILLA_REPLICA_PORT: the port the replica listens on, on the machine's address (default 8080). */
  port: number;
  /** FLOTILLA_REPLICA_TIMEOUT_MS: how long to wait for a started replica's /api/v1/health (default 60000). */
  timeoutMs: number;
}

/** Read with the machines config; every problem named with its variable. */
export function loadReplicaConfig(dataDir: string, env: NodeJS.ProcessEnv): ReplicaConfig {
  const inData = join(dataDir, "control-plane", "flotilla-control-plane.tar.gz");
  const inRepo = resolve(__dirname, "..", "..", "..", "..", "apps", "api", "dist-bundle", "flotilla-control-plane.tar.gz");
  const bundle = env.FLOTILLA_CONTROL_PLANE_BUNDLE || (existsSync(inData) ? inData : inRepo);
  if (!isAbsolute(bundle))
    throw new Error(`invalid configuration: FLOTILLA_CONTROL_PLANE_BUNDLE must be an absolute path, got "${bundle}"`);
  const number = (key: string, dflt: number, min: number, max: number) => {
    const v = Number(env[key] || dflt);
    if (!Number.isInteger(v) || v < min || v > max)
      throw new Error(`invalid configuration: ${key} must be an integer from ${min} to ${max}`);
    return v;
  };
  const url = (key: string, parse: (v: string) => unknown) => {
    const v = env[key];
    if (!v) return undefined;
    try {
      parse(v);
    } catch (e) {
      throw new Error(`invalid configuration: ${key}: ${(e as Error).message.replace(/^(DATABASE|REDIS)_URL:? ?/, "")}`, { cause: e });
    }
    return v;
  };
  return {
    bundle,
    databaseUrl: url("FLOTILLA_REPLICA_DATABASE_URL", parseDatabaseUrl),
    redisUrl: url("FLOTILLA_REPLICA_REDIS_URL", parseRedisUrl),
    port: number("FLOTILLA_REPLICA_PORT", DEFAULT_REPLICA_PORT, 1, 65535),
    timeoutMs: number("FLOTILLA_REPLICA_TIMEOUT_MS", 60_000, 1000, 3_600_000),
  };
}
