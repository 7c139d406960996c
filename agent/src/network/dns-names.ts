/**
 * What the embedded DNS server answers, decided from the user networks alone. Pure.
 *
 * A container asks through its primary network's gateway; it is known by its address there. It
 * may resolve, on every network it is attached to, the other containers' names, short ids and
 * aliases (case-insensitive, a trailing dot ignored). Anything else is forwarded to the host's
 * resolvers, unless the container is only on internal networks (they have no way out, so neither
 * have their names: NXDOMAIN). An address no container holds on that network is refused.
 */
import type { UserNetworkRecord } from "./user-network-state";

/** What to do with one question. */
export type DnsDecision = { kind: "answer"; addresses: string[] } | { kind: "forward" } | { kind: "nxdomain" } | { kind: "refuse" };

/** The DNS names of a container on a network: name, short id and aliases, lower-case. */
export function dnsNames(e: { containerId: string; name: string; aliases: readonly string[] }): string[] {
  const names = [e.name, e.containerId.slice(0, 12), ...e.aliases].map((n) => n.toLowerCase());
  return [...new Set(names)];
}

/** Decides the answer to `qname` asked by `clientIp` on network `networkId`. */
export function resolveQuery(networks: readonly UserNetworkRecord[], networkId: string, clientIp: string, qname: string): DnsDecision {
  const asked = networks.find((n) => n.id === networkId);
  const client = asked && Object.values(asked.endpoints).find((e) => e.ipAddress === clientIp && e.status === "ready");
  if (!client) return { kind: "refuse" };
  const mine = networks.filter((n) => n.endpoints[client.containerId]?.status === "ready");
  const name = qname.toLowerCase().replace(/\.$/, "");
  const addresses: string[] = [];
  for (const n of mine) {
    for (const e of Object.values(n.endpoints)) {
      if (e.status === "ready" && dnsNames(e).includes(name) && !addresses.includes(e.ipAddress)) addresses.push(e.ipAddress);
    }
  }
  if (addresses.length) return { kind: "answer", addresses };
  return mine.some((n) => !n.internal) ? { kind: "forward" } : { kind: "nxdomain" };
}
