/**
 * The iptables rules of a host network, as text in the exact form `iptables -S` prints them, so
 * what we want can be compared with what the kernel has by string equality. Pure.
 *
 * Chains (P = chainPrefix, BR = bridge):
 *   nat    P-DNAT   ← PREROUTING, OUTPUT  for local destinations: one DNAT per published port
 *   nat    P-POST   ← POSTROUTING         egress / from-host / hairpin MASQUERADE (static)
 *   filter P-FWD    ← FORWARD             replies in, anything out, published ports in (static)
 *   filter P-PORTS  ← P-FWD               one ACCEPT per published port
 *   filter P-INPUT  ← INPUT               drop 127.0.0.0/8 arriving on BR (see routeLocalnetGuard)
 *   nat    P-NPOST ← P-POST, filter P-NIN ← P-FWD (first), P-NOUT ← P-FWD (last), P-NLO ← P-INPUT:
 *          the same for each user-defined network (user-network-rules.ts), tagged `flotilla-net:<id>`
 * Per-container rules carry the comment `flotilla:<containerId>`; that tag, not our state file,
 * is how detach and garbage collection find them.
 */
import type { PublishedPort } from "./ports";

/** The iptables tables we use. */
export type Table = "nat" | "filter";

/** Names of our chains for one chain prefix. */
export interface ChainNames {
  readonly dnat: string;
  readonly post: string;
  readonly fwd: string;
  readonly ports: string;
  readonly input: string;
  /** User networks: MASQUERADE per network (nat). */
  readonly npost: string;
  /** User networks: what may enter each network's bridge (filter, before the default bridge's rules). */
  readonly nin: string;
  /** User networks: what may leave each network's bridge (filter, after the default bridge's rules). */
  readonly nout: string;
  /** User networks: the route_localnet guard per bridge (filter INPUT). */
  readonly nlo: string;
  /**
   * The ingress mesh's chains (written by agent/src/ingress, which names them alike): listed here
   * only so that uninstall (agent --cleanup, teardown) removes them with the rest.
   */
  readonly idnat: string;
  readonly ipost: string;
  readonly ifwd: string;
}

/** Longest prefix that keeps `<prefix>-PORTS` within iptables' 28-character chain names. */
export const MAX_PREFIX = 22;

/** `FLOTILLA` → FLOTILLA-DNAT, -POST, -FWD, -PORTS, -INPUT, -NPOST, -NIN, -NOUT, -NLO. */
export function chainNames(prefix: string): ChainNames {
  return {
    dnat: `${prefix}-DNAT`,
    post: `${prefix}-POST`,
    fwd: `${prefix}-FWD`,
    ports: `${prefix}-PORTS`,
    input: `${prefix}-INPUT`,
    npost: `${prefix}-NPOST`,
    nin: `${prefix}-NIN`,
    nout: `${prefix}-NOUT`,
    nlo: `${prefix}-NLO`,
    idnat: `${prefix}-IDNAT`,
    ipost: `${prefix}-IPOST`,
    ifwd: `${prefix}-IFWD`,
  };
}

/**
 * Chains holding per-container and per-network rules: created once, never flushed while the agent
 * lives. Listed before the static chains that jump to them, so a restore declares them first.
 */
export function dynamicChains(c: ChainNames): Record<Table, string[]> {
  return { nat: [c.dnat, c.npost], filter: [c.ports, c.nin, c.nout, c.nlo] };
}

/** Chains whose whole content is static: rewritten (atomically) by every init(). */
export function staticChains(c: ChainNames, bridge: string, subnet: string): Record<Table, { chain: string; rules: string[] }[]> {
  return {
    nat: [
      {
        chain: c.post,
        rules: [
          `-A ${c.post} -j ${c.npost}`,
          // Egress: containers leave through the host's address (and come back through conntrack).
          `-A ${c.post} -s ${subnet} ! -o ${bridge} -j MASQUERADE`,
          // From the host into containers, incl. 127.0.0.1:PORT DNATed out of lo: the container
          // cannot answer 127.0.0.1 (that is its own lo), so the source becomes the gateway.
          `-A ${c.post} -o ${bridge} -m addrtype --src-type LOCAL -j MASQUERADE`,
          // Hairpin: a container reaching a published port (its own or a neighbour's) through a
          // host address is DNATed back onto the bridge; unless the source is rewritten the reply
          // would go straight to the client, which expects it from the host address, and be lost.
          `-A ${c.post} -s ${subnet} -o ${bridge} -m conntrack --ctstate DNAT -j MASQUERADE`,
        ],
      },
    ],
    filter: [
      {
        chain: c.fwd,
        rules: [
          // User networks first: their DROP of anything new entering a network's bridge from
          // elsewhere must win over this bridge's "-i bridge -j ACCEPT" (isolation both ways).
          `-A ${c.fwd} -j ${c.nin}`,
          `-A ${c.fwd} -o ${bridge} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT`,
          `-A ${c.fwd} -i ${bridge} -j ACCEPT`,
          `-A ${c.fwd} -o ${bridge} -j ${c.ports}`,
          // New connections into the bridge that are not to a published port: dropped, as Docker's
          // FORWARD policy DROP does, but scoped to our bridge so the host's policy stays untouched.
          `-A ${c.fwd} -o ${bridge} -j DROP`,
          // Egress of user networks last: after this bridge's DROP, so no network reaches it.
          `-A ${c.fwd} -j ${c.nout}`,
        ],
      },
      { chain: c.input, rules: [routeLocalnetGuard(c, bridge), `-A ${c.input} -j ${c.nlo}`] },
    ],
  };
}

/**
 * route_localnet=1 on the bridge (needed for 127.0.0.1:PORT → container) also lets a container
 * send packets to 127.0.0.1 via the gateway and reach the host's loopback-only services
 * (CVE-2020-8558). The only packets from the bridge that may reach 127/8 are the replies of
 * connections the host opened to 127.0.0.1:PORT (un-masqueraded back to 127.0.0.1 by conntrack
 * before INPUT): those are ESTABLISHED; anything new is dropped.
 */
function routeLocalnetGuard(c: ChainNames, bridge: string): string {
  return `-A ${c.input} -d 127.0.0.0/8 -i ${bridge} -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP`;
}

/** The rules in built-in chains that send traffic to ours. */
export function jumpRules(c: ChainNames): Record<Table, string[]> {
  return {
    nat: [
      `-A PREROUTING -m addrtype --dst-type LOCAL -j ${c.dnat}`,
      // OUTPUT too, and without Docker's `! -d 127.0.0.0/8`: we have no userland proxy, so
      // 127.0.0.1:PORT from the host itself must be DNATed as well.
      `-A OUTPUT -m addrtype --dst-type LOCAL -j ${c.dnat}`,
      `-A POSTROUTING -j ${c.post}`,
    ],
    filter: [`-A FORWARD -j ${c.fwd}`, `-A INPUT -j ${c.input}`],
  };
}

/** Start of the comment on every per-container rule. */
export const TAG_PREFIX = "flotilla:";

/** The rule comment that marks a container's rules. */
export function tagOf(containerId: string): string {
  return `${TAG_PREFIX}${containerId}`;
}

/** The container a rule belongs to, from its comment; undefined for untagged rules. */
export function tagIn(rule: string): string | undefined {
  const m = /--comment "?flotilla:([A-Za-z0-9][A-Za-z0-9_.-]*)"?/.exec(rule);
  return m?.[1];
}

/** A container's per-port rules: DNAT in nat, the matching ACCEPT in filter. */
export function endpointRules(c: ChainNames, containerId: string, ip: string, ports: readonly PublishedPort[]): Record<Table, string[]> {
  const tag = `-m comment --comment "${tagOf(containerId)}"`;
  const nat: string[] = [];
  const filter: string[] = [];
  for (const p of ports) {
    const dst = p.hostIp === "0.0.0.0" ? "" : `-d ${p.hostIp}/32 `;
    nat.push(
      `-A ${c.dnat} ${dst}-p ${p.protocol} -m ${p.protocol} --dport ${p.hostPort} ${tag} -j DNAT --to-destination ${ip}:${p.containerPort}`,
    );
    // ctstate DNAT: only traffic that came through a published port, not anything routed to the
    // container's address from outside.
    filter.push(
      `-A ${c.ports} -d ${ip}/32 -p ${p.protocol} -m ${p.protocol} --dport ${p.containerPort} -m conntrack --ctstate DNAT ${tag} -j ACCEPT`,
    );
  }
  return { nat, filter };
}

/** `iptables -S` of a table, split into user chains and rules. */
export interface TableListing {
  chains: Set<string>;
  rules: string[];
}

/** Reads the output of `iptables -t TABLE -S`: `-N` lines are chains, `-A` lines rules. */
export function parseListing(text: string): TableListing {
  const chains = new Set<string>();
  const rules: string[] = [];
  for (const line of text.split("\n").map((l) => l.trim())) {
    if (line.startsWith("-N ")) chains.add(line.slice(3));
    else if (line.startsWith("-A ")) rules.push(line);
  }
  return { chains, rules };
}

/** Chain of an `-A CHAIN …` line. */
export function chainOf(rule: string): string {
  return rule.split(" ", 2)[1];
}

/** The `-D` twin of an `-A` line, for iptables-restore. */
export function deleteOf(rule: string): string {
  return `-D ${rule.slice(3)}`;
}

/** An iptables-restore script for one table (use with --noflush). */
export function restoreScript(table: Table, lines: readonly string[]): string {
  return `*${table}\n${lines.join("\n")}\nCOMMIT\n`;
}

/** The `-I CHAIN 1` twin of an `-A` line: jumps go first so host rules cannot shadow them. */
export function insertOf(rule: string): string {
  const [, chain, ...rest] = rule.split(" ");
  return `-I ${chain} 1 ${rest.join(" ")}`;
}
