/**
 * What the kernel must hold for a NodeNetworkTable, decided purely: device names, the VXLAN
 * forwarding entries of each network, the neighbour entries and the iptables rules inside each
 * attached container's namespace. `overlay-kernel.ts` applies them; `overlay-networks.ts` decides
 * when.
 *
 * Per network on a node:
 *   bridge ovb<8 hex>  ◄─ vxlan ovx<8 hex> (id VNI, local nodeAddress, dstport 4789, nolearning)
 *                      ◄─ veth ovc<10 hex> per attached container (eth1, eth2… inside it)
 *   vxlan fdb: 00:00:00:00:00:00 dst PEER per peer (broadcast and unknown: flooded to every peer)
 *              MAC dst NODE per endpoint on another node (a static entry: no learning)
 * Inside a container, per network: a permanent neighbour entry for every other endpoint (its MAC
 * is a function of its address, so an entry is never stale in content), so a container does not
 * need to flood ARP to reach a known task. Names are hashes of the agent's scope (its default
 * bridge) and the network id, so agents sharing one kernel never pick the same name.
 */
import { createHash } from "node:crypto";
import { overlayMac, type OverlayNetworkView } from "@flotilla/core";

/** VXLAN's IANA port. */
export const VXLAN_PORT = 4789;
/** VXLAN over IPv4 adds 50 bytes (outer IP 20, UDP 8, VXLAN 8, inner Ethernet 14). */
export const VXLAN_OVERHEAD = 50;
/** The all-zeros MAC: the flood entry of a VXLAN device. */
export const FLOOD_MAC = "00:00:00:00:00:00";

const hash = (...parts: string[]) => createHash("sha256").update(parts.join("\0")).digest("hex");

/** The bridge and VXLAN device of one network (IFNAMSIZ 15: both are 11 characters). */
export function overlayLinkNames(scope: string, networkId: string): { bridge: string; vxlan: string } {
  const h = hash(scope, "overlay", networkId);
  return { bridge: `ovb${h.slice(0, 8)}`, vxlan: `ovx${h.slice(0, 8)}` };
}

/** The host end of a container's veth on one network (13 characters). */
export function overlayVethName(scope: string, networkId: string, containerId: string): string {
  return `ovc${hash(scope, "overlay", networkId, containerId).slice(0, 10)}`;
}

/** One VXLAN forwarding entry: frames for `mac` are sent to the node `dst`. */
export interface FdbEntry {
  mac: string;
  dst: string;
}

const key = (e: FdbEntry) => `${e.mac.toLowerCase()} ${e.dst}`;

/** The VXLAN device's entries for a network: a flood entry per peer, a static one per remote endpoint. */
export function desiredFdb(view: OverlayNetworkView, nodeAddress: string): FdbEntry[] {
  const out = new Map<string, FdbEntry>();
  for (const p of view.peers) if (p !== nodeAddress) out.set(key({ mac: FLOOD_MAC, dst: p }), { mac: FLOOD_MAC, dst: p });
  for (const e of view.endpoints) {
    if (e.nodeAddress === nodeAddress) continue;
    const entry = { mac: e.mac.toLowerCase(), dst: e.nodeAddress };
    out.set(key(entry), entry);
  }
  return [...out.values()].sort((a, b) => key(a).localeCompare(key(b)));
}

/** What to delete and add to go from the entries the device has to the wanted ones. */
export function diffFdb(current: readonly FdbEntry[], wanted: readonly FdbEntry[]): { del: FdbEntry[]; add: FdbEntry[] } {
  const have = new Set(current.map(key));
  const want = new Set(wanted.map(key));
  return { del: current.filter((e) => !want.has(key(e))), add: wanted.filter((e) => !have.has(key(e))) };
}

/** `bridge -batch` lines for a diff (deletions first, so a MAC that moved nodes is never sent twice). */
export function fdbBatch(vxlan: string, diff: { del: readonly FdbEntry[]; add: readonly FdbEntry[] }): string[] {
  return [
    ...diff.del.map((e) => `fdb del ${e.mac} dev ${vxlan} dst ${e.dst} self`),
    ...diff.add.map((e) => `fdb append ${e.mac} dev ${vxlan} dst ${e.dst} self permanent`),
  ];
}

/** `ip -batch` lines setting a container's neighbour entries on one interface: exactly the network's other endpoints. */
export function neighbourBatch(view: OverlayNetworkView, ifname: string, ownIp: string): string[] {
  const lines = [`neigh flush dev ${ifname} nud permanent`];
  for (const e of view.endpoints)
    if (e.ip !== ownIp) lines.push(`neigh replace ${e.ip} lladdr ${overlayMac(e.ip)} dev ${ifname} nud permanent`);
  return lines;
}

/** The MTU of overlay links for an underlay MTU. */
export function overlayMtu(underlayMtu: number): number {
  return underlayMtu - VXLAN_OVERHEAD;
}

/** One VIP as a container sees it: where new connections to it go. */
export interface VipPlan {
  vip: string;
  service: string;
  backends: readonly string[];
}

/** The VIPs of the services on the networks a container is attached to. */
export function vipPlans(networks: readonly OverlayNetworkView[]): VipPlan[] {
  const out: VipPlan[] = [];
  for (const n of networks)
    for (const s of n.services)
      if (s.endpointMode === "vip" && s.vip) out.push({ vip: s.vip, service: s.name, backends: [...s.backends].sort() });
  return out.sort((a, b) => a.vip.localeCompare(b.vip));
}

/** Our chains inside a container's namespace. */
export const CONTAINER_CHAINS = { nat: "FLT-OVL", post: "FLT-OVL-POST", filter: "FLT-OVL-REJ" } as const;

/** The embedded DNS redirect of a container whose primary network is the default bridge. */
export interface DnsRedirect {
  /** Where the agent's DNS listens (the default bridge's gateway). */
  server: string;
  port: number;
  /** The container's address on the default bridge: the source the DNS server knows it by. */
  containerIp: string;
}

/** The jumps into our chains from the built-in ones, as `iptables -S` prints them. */
export const CONTAINER_JUMPS = {
  nat: [`-A OUTPUT -j ${CONTAINER_CHAINS.nat}`, `-A POSTROUTING -j ${CONTAINER_CHAINS.post}`],
  filter: [`-A OUTPUT -j ${CONTAINER_CHAINS.filter}`],
} as const;

/**
 * An iptables-restore script (to run with --noflush) rewriting our chains in a container's
 * namespace whole, in one transaction per table: each VIP DNATed to one of its backends, round
 * robin over new connections (`statistic --mode nth`: rule i of n takes every (n-i)th connection
 * reaching it, so each backend gets 1/n; conntrack keeps a connection on its backend); a VIP with
 * no backend is REJECTed in filter OUTPUT (a packet DNATed in nat OUTPUT no longer has the VIP as
 * destination there, so the REJECT only meets VIPs left as they were). `missingJumps` are the jump
 * lines not yet in the namespace (added, never duplicated).
 */
export function containerRulesScript(vips: readonly VipPlan[], dns: DnsRedirect | undefined, missingJumps: readonly string[]): string {
  const c = CONTAINER_CHAINS;
  const nat = [`:${c.nat} - [0:0]`, `:${c.post} - [0:0]`];
  const filter = [`:${c.filter} - [0:0]`];
  if (dns) {
    for (const p of ["udp", "tcp"]) {
      nat.push(`-A ${c.nat} -d 127.0.0.11/32 -p ${p} -m ${p} --dport 53 -j DNAT --to-destination ${dns.server}:${dns.port}`);
      nat.push(
        `-A ${c.post} -s 127.0.0.0/8 -d ${dns.server}/32 -p ${p} -m ${p} --dport ${dns.port} -j SNAT --to-source ${dns.containerIp}`,
      );
    }
  }
  for (const v of vips) {
    const n = v.backends.length;
    v.backends.forEach((b, i) => {
      const spread = i < n - 1 ? ` -m statistic --mode nth --every ${n - i} --packet 0` : "";
      nat.push(`-A ${c.nat} -d ${v.vip}/32${spread} -j DNAT --to-destination ${b}`);
    });
    filter.push(`-A ${c.filter} -d ${v.vip}/32 -p tcp -j REJECT --reject-with tcp-reset`);
    filter.push(`-A ${c.filter} -d ${v.vip}/32 -j REJECT --reject-with icmp-port-unreachable`);
  }
  const jumps = (table: "nat" | "filter") => missingJumps.filter((j) => (CONTAINER_JUMPS[table] as readonly string[]).includes(j));
  return ["*nat", ...nat, ...jumps("nat"), "COMMIT", "*filter", ...filter, ...jumps("filter"), "COMMIT", ""].join("\n");
}

/** The jump lines an `iptables-save` of the namespace lacks. */
export function missingJumps(saved: string): string[] {
  const lines = new Set(saved.split("\n").map((l) => l.trim()));
  return [...CONTAINER_JUMPS.nat, ...CONTAINER_JUMPS.filter].filter((j) => !lines.has(j));
}
