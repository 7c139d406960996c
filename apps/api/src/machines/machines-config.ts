import { accessSync, constants, existsSync, mkdirSync } from "node:fs";
import { homedir } from "node:os";
import { isAbsolute, join, resolve } from "node:path";
import { parseReplicaUrls } from "@flotilla/core";
import { defaultLockDir } from "@flotilla/drivers";
import { loadReplicaConfig, type ReplicaConfig } from "./replica-config";

/** Where machines live on the control plane's host, checked at start-up. */
export interface MachinesConfig {
  /** FLOTILLA_DATA_DIR: machine stores (`machines/<name>`), the CA (`certs/`), the agent bundle. */
  dataDir: string;
  /** The agent bundle uploaded to machines (scripts/build-agent-bundle.mjs). */
  agentBundle: string;
  /** Where the users' per-machine cert dirs go (`<configDir>/machines/<name>`), for `ctl machine env`. */
  userMachinesDir: string;
  /** How long to wait for a provisioned agent to answer mutual TLS. */
  agentTimeoutMs: number;
  /**
   * FLOTILLA_AGENT_API_URL: the control plane's URL as machines reach it (for heartbeats); the
   * first of agentApiUrls. When set, provisioning gives each agent a one-time join token and
   * writes it with the URLs into the agent's environment.
   */
  agentApiUrl?: string;
  /**
   * Every replica's agent-facing URL (FLOTILLA_AGENT_API_URL, comma-separated), in order: written
   * into each agent's env file and sent in heartbeat replies, so agents provisioned before a
   * replica was added learn it too. Empty when agents do not report.
   */
  agentApiUrls: string[];
  /**
   * The control plane's own files on this host (config dir with the admin token, data dir with
   * the CA key and machine stores, the stack's state dir, the lock dir): containers of machines
   * that share this host's filesystem (netns) may not bind-mount them.
   */
  controlPlanePaths: string[];
  /** What `ctl node promote --control-plane` installs, and with which settings (replica-config.ts). */
  replicas: ReplicaConfig;
}

export const MACHINES_CONFIG = Symbol("MACHINES_CONFIG");

/** ~/.local/share/flotilla, or /var/lib/flotilla/data for root. */
export function defaultDataDir(env: NodeJS.ProcessEnv): string {
  if (process.getuid?.() === 0) return "/var/lib/flotilla/data";
  return join(env.XDG_DATA_HOME || join(env.HOME || homedir(), ".local", "share"), "flotilla");
}

/**
 * FLOTILLA_DATA_DIR (absolute, created if missing, must be writable), FLOTILLA_AGENT_BUNDLE
 * (default: `<dataDir>/agent/flotilla-agent.tar.gz` when present, else the repository's
 * `agent/dist/flotilla-agent.tar.gz`), FLOTILLA_AGENT_TIMEOUT_MS (default 60000).
 * Read here rather than in AppConfig, as heartbeat-config does (config.ts is the foundation's).
 */
export function loadMachinesConfig(configDir: string, env: NodeJS.ProcessEnv = process.env): MachinesConfig {
  const dataDir = env.FLOTILLA_DATA_DIR || defaultDataDir(env);
  if (!isAbsolute(dataDir)) throw new Error(`invalid configuration: FLOTILLA_DATA_DIR must be an absolute path, got "${dataDir}"`);
  try {
    mkdirSync(join(dataDir, "machines"), { recursive: true, mode: 0o700 });
    accessSync(dataDir, constants.W_OK);
  } catch (e) {
    throw new Error(`invalid configuration: FLOTILLA_DATA_DIR ${dataDir} is not a writable directory (${(e as Error).message})`, {
      cause: e,
    });
  }
  const inData = join(dataDir, "agent", "flotilla-agent.tar.gz");
  const inRepo = resolve(__dirname, "..", "..", "..", "..", "agent", "dist", "flotilla-agent.tar.gz");
  const agentBundle = env.FLOTILLA_AGENT_BUNDLE || (existsSync(inData) ? inData : inRepo);
  const timeout = Number(env.FLOTILLA_AGENT_TIMEOUT_MS || 60_000);
  if (!Number.isInteger(timeout) || timeout < 1000)
    throw new Error("invalid configuration: FLOTILLA_AGENT_TIMEOUT_MS must be an integer of at least 1000");
  let agentApiUrls: string[];
  try {
    agentApiUrls = parseReplicaUrls(env.FLOTILLA_AGENT_API_URL ?? "", "FLOTILLA_AGENT_API_URL");
  } catch (e) {
    throw new Error(`invalid configuration: ${(e as Error).message} (one URL, or every replica's separated by commas)`, { cause: e });
  }
  const controlPlanePaths = [
    ...new Set([configDir, dataDir, env.FLOTILLA_STATE_DIR, defaultLockDir(env)].filter((p): p is string => !!p).map((p) => resolve(p))),
  ];
  return {
    dataDir,
    agentBundle,
    userMachinesDir: join(configDir, "machines"),
    agentTimeoutMs: timeout,
    agentApiUrl: agentApiUrls[0],
    agentApiUrls,
    controlPlanePaths,
    replicas: loadReplicaConfig(dataDir, env),
  };
}
