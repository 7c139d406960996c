/**
 * The iptables rules of one user-defined network, in the form `iptables -S` prints them, and the
 * rules inside a container's namespace that send 127.0.0.11:53 to the embedded DNS server. Pure.
 *
 * Per network (bridge B, subnet S), tagged `flotilla-net:<network id>`:
 *   nat    P-NPOST  S leaving not via B: MASQUERADE (egress); host → B and hairpin: MASQUERADE
 *   filter P-NIN    into B: replies ACCEPT; B → B ACCEPT; published ports (P-PORTS); else DROP
 *   filter P-NOUT   out of B: ACCEPT (egress)
 *   filter P-NLO    127.0.0.0/8 arriving on B and not a reply: DROP (route_localnet guard)
 * An internal network gets only B → B ACCEPT and DROP in both directions: no NAT, no ports, no way out.
 * P-NIN is evaluated before the default bridge's rules and P-NOUT after them, so a packet from one
 * network to another (or to/from the default bridge) always meets a DROP first.
 */
import type { ChainNames, Table } from "./nat-rules";

/** Start of the comment on every per-network rule. */
export const NET_TAG_PREFIX = "flotilla-net:";

/** The network a rule belongs to, from its comment; undefined for other rules. */
export function netTagIn(rule: string): string | undefined {
  return /--comment "?flotilla-net:([0-9a-f]+)"?/.exec(rule)?.[1];
}

/**
 * A per-network rule of this agent: tagged, and in one of its own chains. Another agent sharing
 * the kernel tags its rules alike, in chains of its own prefix, and they are not ours to remove.
 */
export function ownNetworkRule(c: ChainNames, rule: string): boolean {
  return netTagIn(rule) !== undefined && [c.npost, c.nin, c.nout, c.nlo].some((chain) => rule.startsWith(`-A ${chain} `));
}

/** What the rules of a network depend on. */
export interface NetworkRuleInput {
  id: string;
  bridge: string;
  subnet: string;
  internal: boolean;
}

/** The rules of one network, per table. */
export function networkRules(c: ChainNames, n: NetworkRuleInput): Record<Table, string[]> {
  const tag = `-m comment --comment "${NET_TAG_PREFIX}${n.id}"`;
  const b = n.bridge;
  if (n.internal) {
    return {
      nat: [],
      filter: [
        `-A ${c.nin} -i ${b} -o ${b} ${tag} -j ACCEPT`,
        `-A ${c.nin} -o ${b} ${tag} -j DROP`,
        `-A ${c.nin} -i ${b} ${tag} -j DROP`,
        localnetGuard(c, b, tag),
      ],
    };
  }
  return {
    nat: [
      `-A ${c.npost} -s ${n.subnet} ! -o ${b} ${tag} -j MASQUERADE`,
      `-A ${c.npost} -o ${b} -m addrtype --src-type LOCAL ${tag} -j MASQUERADE`,
      `-A ${c.npost} -s ${n.subnet} -o ${b} -m conntrack --ctstate DNAT ${tag} -j MASQUERADE`,
    ],
    filter: [
      `-A ${c.nin} -o ${b} -m conntrack --ctstate RELATED,ESTABLISHED ${tag} -j ACCEPT`,
      `-A ${c.nin} -i ${b} -o ${b} ${tag} -j ACCEPT`,
      `-A ${c.nin} -o ${b} ${tag} -j ${c.ports}`,
      `-A ${c.nin} -o ${b} ${tag} -j DROP`,
      `-A ${c.nout} -i ${b} ${tag} -j ACCEPT`,
      localnetGuard(c, b, tag),
    ],
  };
}

function localnetGuard(c: ChainNames, bridge: string, tag: string): string {
  return `-A ${c.nlo} -d 127.0.0.0/8 -i ${bridge} -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT ${tag} -j DROP`;
}

/** The address containers ask for DNS, as in Docker. */
export const EMBEDDED_DNS_IP = "127.0.0.11";

/**
 * An iptables-restore script (nat table, flushed: the namespace is the container's own) for a
 * container's namespace: queries to 127.0.0.11:53 go to the DNS server on the network's gateway,
 * with the container's address as source so the server knows who asks. A loopback source may
 * only leave through eth0 with route_localnet on in the namespace (set beside this script).
 */
export function dnsRedirectScript(gateway: string, containerIp: string, dnsPort: number): string {
  const lines = ["*nat", ":PREROUTING ACCEPT [0:0]", ":INPUT ACCEPT [0:0]", ":OUTPUT ACCEPT [0:0]", ":POSTROUTING ACCEPT [0:0]"];
  for (const p of ["udp", "tcp"]) {
    lines.push(`-A OUTPUT -d ${EMBEDDED_DNS_IP}/32 -p ${p} -m ${p} --dport 53 -j DNAT --to-destination ${gateway}:${dnsPort}`);
    lines.push(`-A POSTROUTING -s 127.0.0.0/8 -d ${gateway}/32 -p ${p} -m ${p} --dport ${dnsPort} -j SNAT --to-source ${containerIp}`);
  }
  lines.push("COMMIT", "");
  return lines.join("\n");
}
