/**
 * The embedded DNS server's answers for containers on overlay networks. Pure. Names are
 * network-scoped: a container resolves only the services of the networks it is attached to.
 *   SERVICE, ALIAS   the VIP (endpointMode vip), or every backend (dnsrr)
 *   tasks.SERVICE    every backend
 * Case-insensitive, a trailing dot ignored. undefined: not an overlay name (the caller goes on
 * as for any other name: forwarded to the host's resolvers).
 */
import type { OverlayNetworkView } from "@flotilla/core";

export function overlayAnswer(networks: readonly OverlayNetworkView[], attached: ReadonlySet<string>, qname: string): string[] | undefined {
  const name = qname.toLowerCase().replace(/\.$/, "");
  let found = false;
  const out: string[] = [];
  const add = (ips: readonly string[]) => {
    found = true;
    for (const ip of ips) if (!out.includes(ip)) out.push(ip);
  };
  for (const n of networks) {
    if (!attached.has(n.id)) continue;
    for (const s of n.services) {
      const names = [s.name, ...s.aliases].map((x) => x.toLowerCase());
      if (names.includes(name)) add(s.endpointMode === "vip" && s.vip ? [s.vip] : s.backends);
      else if (name === `tasks.${s.name.toLowerCase()}`) add(s.backends);
    }
  }
  return found ? out : undefined;
}
