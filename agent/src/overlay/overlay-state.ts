/**
 * overlay.json in the network state dir: the last table applied (so an agent restart restores
 * the node's overlay devices before the control plane answers), the networks whose devices
 * exist, and the containers' interfaces on them. Written whole and atomically.
 */
import * as fs from "node:fs/promises";
import { join } from "node:path";
import type { NodeNetworkTable } from "@flotilla/core";
import { readVersionedJson, writeJsonDurably } from "../system/durable-json";

/** One container's interface on one overlay network. */
export interface OverlayAttachmentRecord {
  networkId: string;
  networkName: string;
  ip: string;
  prefixLen: number;
  mac: string;
  aliases: string[];
  /** Interface inside the container (eth1, eth2…). */
  ifname: string;
  /** Host (node) end of the veth, on the network's bridge. */
  veth: string;
  /** The container's namespace name (`flt-…`). */
  netns: string;
}

/** A container with overlay interfaces. */
export interface OverlayContainerRecord {
  containerId: string;
  /** The container's address on its primary network: the DNS server knows it by this address. */
  primaryIp: string;
  /** Whether 127.0.0.11 is redirected to our DNS server (primary network the default bridge). */
  dns: boolean;
  attachments: OverlayAttachmentRecord[];
}

export interface OverlayState {
  version: 1;
  table?: NodeNetworkTable;
  /** Ids of the networks whose devices were made. */
  networks: string[];
  containers: Record<string, OverlayContainerRecord>;
}

export const OVERLAY_STATE_FILE = "overlay.json";

export async function loadOverlayState(dir: string): Promise<OverlayState> {
  return (await readVersionedJson<OverlayState>(join(dir, OVERLAY_STATE_FILE))) ?? { version: 1, networks: [], containers: {} };
}

export async function saveOverlayState(dir: string, state: OverlayState): Promise<void> {
  await writeJsonDurably(join(dir, OVERLAY_STATE_FILE), state);
}

export async function removeOverlayState(dir: string): Promise<void> {
  await fs.rm(join(dir, OVERLAY_STATE_FILE), { force: true });
}
