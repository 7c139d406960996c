/**
 * The links and namespaces of a host network, through `ip` (iproute2) and /proc/sys: the
 * bridge, each container's network namespace and veth pair. Every function is idempotent
 * where the caller needs it to be (creating what exists, deleting what is gone).
 */
import { createHash } from "node:crypto";
import * as fs from "node:fs/promises";
import { join } from "node:path";
import { ConflictError } from "@flotilla/core";
import { isMissing, run } from "./exec";
import { intToIp, ipToInt, prefixesOverlap, type Subnet } from "./ipam";

/** Where `ip netns add NAME` pins a namespace; the shim joins it with `--netns PATH`. */
export const NETNS_DIR = "/run/netns";

interface IpLink {
  ifname: string;
  address?: string;
  master?: string;
  operstate?: string;
  flags?: string[];
  linkinfo?: { info_kind?: string };
  addr_info?: { family: string; local: string; prefixlen: number }[];
}

/**
 * Names of a container's sandbox. The namespace is `flt-<short id>` (the first 12 characters of a
 * Docker-style hex id, else the whole id) so `ip netns list` reads like `docker ps`. The host-side
 * veth name must fit IFNAMSIZ (15), so it is a hash, of the bridge too: two agents on one kernel
 * (tests, netns machines) never pick the same name for the same container id.
 */
export function sandboxNames(bridge: string, containerId: string): { netns: string; veth: string } {
  const short = /^[0-9a-f]{32,}$/.test(containerId) ? containerId.slice(0, 12) : containerId;
  const hash = createHash("sha256").update(`${bridge}\0${containerId}`).digest("hex");
  return { netns: `flt-${short}`, veth: `veth${hash.slice(0, 7)}` };
}

/** `/run/netns/NAME`: what the shim's `--netns` takes. */
export function netnsPath(name: string): string {
  return join(NETNS_DIR, name);
}

/** One link's details, or undefined when there is no such link. */
export async function showLink(name: string, netns?: string): Promise<IpLink | undefined> {
  try {
    const out = await run("link", "ip", [...(netns ? ["-n", netns] : []), "-j", "-d", "addr", "show", "dev", name]);
    return (JSON.parse(out) as IpLink[])[0];
  } catch (e) {
    if (isMissing(e)) return undefined;
    throw e;
  }
}

/** Names of the links enslaved to a bridge (its container veths). */
export async function bridgeMembers(bridge: string): Promise<string[]> {
  try {
    const out = await run("bridge", "ip", ["-j", "link", "show", "master", bridge]);
    return (JSON.parse(out || "[]") as IpLink[]).map((l) => l.ifname);
  } catch (e) {
    if (isMissing(e)) return [];
    throw e;
  }
}

/**
 * Makes sure the bridge exists, is a bridge, holds the gateway address and is up. A link of that
 * name that is not a bridge is someone else's: ConflictError rather than reusing it.
 *
 * The bridge's MAC address is pinned (set explicitly, to the one it has). Left to the kernel, a
 * bridge takes the lowest MAC of its ports, so it changes whenever a container whose veth has a
 * lower one is plugged in, or the container whose veth it had is removed; the other containers
 * keep the old MAC for the gateway in their ARP caches and lose the gateway (the embedded DNS,
 * egress, published ports) until those entries are found stale: 20 to 50 s. Setting the address
 * makes the kernel keep it (a user-set bridge address is never recalculated).
 */
export async function ensureBridge(bridge: string, subnet: Subnet, gateway = intToIp(subnet.gateway)): Promise<void> {
  let link = await showLink(bridge);
  if (!link) {
    await run("bridge", "ip", ["link", "add", "name", bridge, "type", "bridge"]);
    link = await showLink(bridge);
  } else if (link.linkinfo?.info_kind !== "bridge") {
    throw new ConflictError(`bridge: link ${bridge} exists and is a ${link.linkinfo?.info_kind ?? "device"}, not a bridge`);
  }
  // The address it has now: for a bridge made by an earlier agent, the one its containers know.
  if (link?.address) await run("bridge", "ip", ["link", "set", "dev", bridge, "address", link.address]);
  const gw = gateway;
  const has = link?.addr_info?.some((a) => a.family === "inet" && a.local === gw && a.prefixlen === subnet.prefixLen);
  if (!has) await run("bridge", "ip", ["addr", "add", `${gw}/${subnet.prefixLen}`, "dev", bridge]);
  await run("bridge", "ip", ["link", "set", "dev", bridge, "up"]);
}

/** A route of the host's main table (not a default route), as a prefix. */
export interface HostRoute {
  dst: string;
  dev?: string;
  network: number;
  prefixLen: number;
}

/** The host's IPv4 routes of the main table, default routes left out. */
export async function hostRoutes(): Promise<HostRoute[]> {
  const out = await run("routes", "ip", ["-j", "-4", "route", "show", "table", "main"]);
  const routes: HostRoute[] = [];
  for (const r of JSON.parse(out || "[]") as { dst: string; dev?: string }[]) {
    if (r.dst === "default") continue;
    const [addr, len] = r.dst.split("/");
    try {
      routes.push({ dst: r.dst, dev: r.dev, network: ipToInt(addr), prefixLen: len === undefined ? 32 : Number(len) });
    } catch {
      // not an IPv4 prefix (e.g. a multicast or unreachable entry printed differently)
    }
  }
  return routes;
}

/**
 * Refuses a subnet that overlaps a route the host already has through another device: the
 * containers would shadow (or be shadowed by) a real network. Default routes do not count.
 */
export async function checkSubnetFree(bridge: string, subnet: Subnet, field?: string): Promise<void> {
  for (const r of await hostRoutes()) {
    if (r.dev === bridge) continue;
    if (prefixesOverlap(subnet, r)) {
      throw new ConflictError(`subnet ${subnet.cidr} overlaps the host route ${r.dst}${r.dev ? ` dev ${r.dev}` : ""}`, {
        subnet: subnet.cidr,
        ...(field ? { field } : {}),
      });
    }
  }
}

/** Deletes a link (and so both ends of a veth pair); nothing to do when it is gone. */
export async function deleteLink(step: string, name: string, netns?: string): Promise<void> {
  try {
    await run(step, "ip", [...(netns ? ["-n", netns] : []), "link", "del", "dev", name]);
  } catch (e) {
    if (!isMissing(e)) throw e;
  }
}

/** Writes a sysctl through /proc/sys (`net/ipv4/ip_forward`); no sysctl binary needed. */
export async function writeSysctl(key: string, value: string): Promise<void> {
  const path = join("/proc/sys", key);
  try {
    if ((await fs.readFile(path, "utf8")).trim() === value) return;
    await fs.writeFile(path, value);
  } catch (e) {
    throw new Error(`sysctl: ${key.replaceAll("/", ".")}=${value}: ${(e as Error).message}`, { cause: e });
  }
}

/** True when the namespace is pinned under /run/netns. */
export async function netnsExists(name: string): Promise<boolean> {
  return fs.access(netnsPath(name)).then(
    () => true,
    () => false,
  );
}

/** `ip netns add` + loopback up: the whole of a "none" sandbox, the start of a "bridge" one. */
export async function createNetns(name: string): Promise<void> {
  await run("netns", "ip", ["netns", "add", name]);
  await run("netns", "ip", ["-n", name, "link", "set", "dev", "lo", "up"]);
}

/** Unpins a namespace; it vanishes once no process is left in it. */
export async function deleteNetns(name: string): Promise<void> {
  if (!(await netnsExists(name))) return;
  try {
    await run("netns", "ip", ["netns", "del", name]);
  } catch (e) {
    if (!isMissing(e)) throw e;
  }
}

/** What plugVeth needs to wire a container into the bridge. */
export interface VethPlan {
  bridge: string;
  veth: string;
  netns: string;
  ipAddress: string;
  prefixLen: number;
  gateway: string;
  macAddress: string;
  /** Name inside the namespace; default eth0. */
  ifname?: string;
  /** Route by default through the gateway; default true (false for a second network). */
  defaultRoute?: boolean;
}

/**
 * Creates the veth pair with its peer born inside the namespace as eth0 (no temporary name in
 * the host namespace to collide or leak), enslaves the host end to the bridge, then addresses
 * eth0 and routes by default through the gateway. The host end goes up before eth0 so the
 * container's first packets find a forwarding port.
 */
export async function plugVeth(p: VethPlan): Promise<void> {
  const ifname = p.ifname ?? "eth0";
  await run("veth", "ip", ["link", "add", p.veth, "type", "veth", "peer", "name", ifname, "address", p.macAddress, "netns", p.netns]);
  await run("veth", "ip", ["link", "set", "dev", p.veth, "master", p.bridge]);
  // Hairpin: with br_netfilter (bridge-nf-call-iptables=1) a container's packet to its own
  // published port is DNATed at the bridge layer and then *bridged* back out of the port it came
  // in on, which a bridge refuses unless the port is in hairpin mode.
  await run("veth", "ip", ["link", "set", "dev", p.veth, "type", "bridge_slave", "hairpin", "on"]);
  await run("veth", "ip", ["link", "set", "dev", p.veth, "up"]);
  const inNs = (args: string[]) => run("container address", "ip", ["-n", p.netns, ...args]);
  await inNs(["addr", "add", `${p.ipAddress}/${p.prefixLen}`, "dev", ifname]);
  await inNs(["link", "set", "dev", ifname, "up"]);
  if (p.defaultRoute ?? true) await inNs(["route", "add", "default", "via", p.gateway, "dev", ifname]);
}
