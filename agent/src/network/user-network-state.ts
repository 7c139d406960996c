/**
 * networks.json in the network state dir: the user-defined networks (Docker's `docker network
 * create`) and, per network, the containers attached to it while they run. Written whole and
 * atomically, like network.json, so it is the truth about which subnets and addresses are taken.
 */
import * as fs from "node:fs/promises";
import { join } from "node:path";
import { readVersionedJson, writeJsonDurably } from "../system/durable-json";

/** One container's place on a user network, while it runs. */
export interface UserEndpointRecord {
  containerId: string;
  /** Container name without the leading slash: the DNS name other containers use. */
  name: string;
  /** Extra DNS names on this network (`--network-alias`, compose's service name). */
  aliases: string[];
  ipAddress: string;
  macAddress: string;
  /** Host end of the veth pair, on the network's bridge. */
  veth: string;
  /** Interface name inside the container (eth0, eth1, …). */
  ifname: string;
  /** Namespace name (`flt-…`) the interface lives in. */
  netns: string;
  /** "pending" from the address being handed out until the interface is up ("ready"). */
  status: "pending" | "ready";
}

/** One user-defined network (driver bridge). */
export interface UserNetworkRecord {
  /** 64 hex, Docker style. */
  id: string;
  name: string;
  driver: "bridge";
  created: string;
  /** The Linux bridge (`flu` + hash): unique per agent and network, fits IFNAMSIZ. */
  bridge: string;
  subnet: string;
  gateway: string;
  /** Docker's --ip-range: addresses are handed out from here only. */
  ipRange?: string;
  /** The user chose the subnet (only then may containers ask for a fixed --ip, as in Docker). */
  userSubnet: boolean;
  /** No route out of the network: no NAT, nothing in or out but between its members. */
  internal: boolean;
  attachable: boolean;
  labels: Record<string, string>;
  options: Record<string, string>;
  /** Last address handed out, where round-robin allocation resumes. */
  lastAddress?: string;
  endpoints: Record<string, UserEndpointRecord>;
}

/** The whole of networks.json. */
export interface UserNetworksState {
  version: 1;
  networks: Record<string, UserNetworkRecord>;
}

/** File name of the state, inside the network state dir. */
export const USER_STATE_FILE = "networks.json";

/** The saved state, or an empty one. */
export async function loadUserState(dir: string): Promise<UserNetworksState> {
  return (await readVersionedJson<UserNetworksState>(join(dir, USER_STATE_FILE))) ?? { version: 1, networks: {} };
}

/** Replaces networks.json atomically (temp file, fsync, rename). */
export async function saveUserState(dir: string, state: UserNetworksState): Promise<void> {
  await writeJsonDurably(join(dir, USER_STATE_FILE), state);
}

/** Deletes networks.json (teardown). */
export async function removeUserState(dir: string): Promise<void> {
  await fs.rm(join(dir, USER_STATE_FILE), { force: true });
}
