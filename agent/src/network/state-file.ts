/**
 * network.json in the state dir: the bridge it was made for and one record per attached
 * container. It is the truth about which addresses and host ports are taken. Written whole and
 * atomically (temp file, fsync, rename) so a crash leaves the old or the new file, never half.
 */
import * as fs from "node:fs/promises";
import { join } from "node:path";
import { readVersionedJson, writeJsonDurably } from "../system/durable-json";
import type { IptablesBackend } from "./iptables";
import type { PublishedPort } from "./ports";

/**
 * Docker's network modes we support (HostConfig.NetworkMode); "user" is a container on
 * user-defined networks: a namespace here, its interfaces plugged by UserNetworks.
 */
export type NetworkMode = "bridge" | "host" | "none" | "user";

/** One container's network as stored in network.json. */
export interface EndpointRecord {
  containerId: string;
  mode: NetworkMode;
  /**
   * "pending" is written before the first kernel object is made and "ready" after the last, so a
   * crash in between leaves a record restore() knows to undo.
   */
  status: "pending" | "ready";
  /** Namespace name (`flt-…`); null in host mode. */
  netns: string | null;
  /** Host end of the veth pair; bridge mode only. */
  veth: string | null;
  ipAddress: string;
  macAddress: string;
  prefixLen: number;
  gateway: string;
  ports: PublishedPort[];
}

/** The whole of network.json. */
export interface NetworkState {
  version: 1;
  bridge: string;
  subnet: string;
  chainPrefix: string;
  /** Backend the chains were made with; later runs must use the same one to see them. */
  iptables?: IptablesBackend;
  /** Last address handed out, where round-robin allocation resumes. */
  lastAddress?: string;
  endpoints: Record<string, EndpointRecord>;
}

/** File name of the state, inside the state dir. */
export const STATE_FILE = "network.json";

/** The saved state, or undefined when there is none yet. */
export async function loadState(dir: string): Promise<NetworkState | undefined> {
  return readVersionedJson<NetworkState>(join(dir, STATE_FILE));
}

/** Replaces network.json atomically, creating the state dir if needed. */
export async function saveState(dir: string, state: NetworkState): Promise<void> {
  await writeJsonDurably(join(dir, STATE_FILE), state);
}

/** Deletes network.json (teardown); nothing to do when absent. */
export async function removeState(dir: string): Promise<void> {
  await fs.rm(join(dir, STATE_FILE), { force: true });
}
