/**
 * The routing mesh in the kernel, decided purely: from the table the control plane sent, this
 * node's addresses and the ports its own containers publish, the iptables rules that make every
 * node answer on every ingress port. No I/O; `ingress-kernel.ts` applies the result.
 *
 * Chains (P = chain prefix, default FLOTILLA), each rewritten whole by every apply:
 *   nat    P-IDNAT ← PREROUTING, OUTPUT (-m addrtype --dst-type LOCAL)
 *          per port, one DNAT per backend, spread round robin over new connections with
 *          `-m statistic --mode nth` (rule i of n takes every (n-i)th of what reaches it, so each
 *          backend gets 1/n; only a connection's first packet traverses nat, conntrack does the rest)
 *   nat    P-IPOST ← POSTROUTING
 *          MASQUERADE for backends on other nodes only: their replies must come back through this
 *          node to be un-NATed. Local backends keep the client's address.
 *   filter P-IFWD  ← FORWARD (first)
 *          ACCEPT what was DNATed from an ingress port (both directions: ctstate is the connection's),
 *          so a host whose FORWARD policy is DROP still forwards to other nodes.
 *
 * A local backend (its host is one of this node's addresses) is DNATed straight to the container's
 * address and port: the nat table is consulted once per connection, so DNAT to this node's own
 * published host port would never reach the container rule behind it. A local backend whose host
 * port no running container of this node publishes is left out: the task is gone here, whatever
 * the table (last sent) still says.
 */
import type { IngressPort, IngressPortError } from "./ingress-types";

/** Names of the mesh's chains for one chain prefix (prefix ≤ 22 characters keeps them within 28). */
export interface IngressChains {
  readonly dnat: string;
  readonly post: string;
  readonly fwd: string;
}

export function ingressChains(prefix: string): IngressChains {
  return { dnat: `${prefix}-IDNAT`, post: `${prefix}-IPOST`, fwd: `${prefix}-IFWD` };
}

/** A port one of this node's running containers publishes: hostPort → ip:containerPort. */
export interface LocalEndpoint {
  readonly hostPort: number;
  readonly protocol: "tcp" | "udp";
  readonly ip: string;
  readonly containerPort: number;
}

/** What this node knows besides the table. */
export interface NodeView {
  /** This node's IPv4 addresses: a backend on one of them is local. */
  readonly addresses: readonly string[];
  readonly endpoints: readonly LocalEndpoint[];
}

/** Where one port's connections go on this node. */
export interface PortPlan {
  readonly port: number;
  readonly serviceName: string;
  readonly traffic: "cluster" | "local";
  /** `ip:port` DNAT destinations, in rule order. */
  readonly targets: readonly { readonly to: string; readonly remote: boolean }[];
}

/** The rules of both tables as iptables-restore lines (chain declarations first), and the plans. */
export interface IngressRuleSet {
  readonly nat: readonly string[];
  readonly filter: readonly string[];
  readonly plans: readonly PortPlan[];
  /** Backends left out, per port (IPv6 hosts); the port is still served by the rest. */
  readonly errors: readonly IngressPortError[];
}

/** The jumps from built-in chains into ours, as `-A` lines. */
export function ingressJumps(c: IngressChains): { nat: string[]; filter: string[] } {
  return {
    nat: [
      `-A PREROUTING -m addrtype --dst-type LOCAL -j ${c.dnat}`,
      `-A OUTPUT -m addrtype --dst-type LOCAL -j ${c.dnat}`,
      `-A POSTROUTING -j ${c.post}`,
    ],
    filter: [`-A FORWARD -j ${c.fwd}`],
  };
}

/** Where each port's connections go here: local backends resolved, remote ones kept, traffic=local honoured. */
export function planPorts(ports: readonly IngressPort[], node: NodeView): { plans: PortPlan[]; errors: IngressPortError[] } {
  const local = new Set(node.addresses);
  const published = new Map(node.endpoints.filter((e) => e.protocol === "tcp").map((e) => [e.hostPort, e]));
  const errors: IngressPortError[] = [];
  const plans: PortPlan[] = [];
  for (const p of [...ports].sort((a, b) => a.port - b.port)) {
    const traffic = p.traffic ?? "cluster";
    const targets: { to: string; remote: boolean }[] = [];
    const seen = new Set<string>();
    for (const b of p.backends) {
      if (b.host.includes(":")) {
        errors.push({ port: p.port, message: `backend ${b.host}:${b.port} left out: IPv6 is not supported` });
        continue;
      }
      let target: { to: string; remote: boolean } | undefined;
      if (local.has(b.host)) {
        const e = published.get(b.port);
        if (e) target = { to: `${e.ip}:${e.containerPort}`, remote: false };
      } else if (traffic === "cluster") target = { to: `${b.host}:${b.port}`, remote: true };
      if (target && !seen.has(target.to)) {
        seen.add(target.to);
        targets.push(target);
      }
    }
    plans.push({ port: p.port, serviceName: p.serviceName, traffic, targets });
  }
  return { plans, errors };
}

/** The whole rule set for a table and this node's view. Equal inputs give equal lines. */
export function ingressRules(c: IngressChains, ports: readonly IngressPort[], node: NodeView): IngressRuleSet {
  const { plans, errors } = planPorts(ports, node);
  const nat = [`:${c.dnat} - [0:0]`, `:${c.post} - [0:0]`];
  const filter = [`:${c.fwd} - [0:0]`];
  for (const plan of plans) {
    if (plan.targets.length === 0) continue;
    const match = `-p tcp -m tcp --dport ${plan.port}`;
    const n = plan.targets.length;
    plan.targets.forEach((t, i) => {
      const spread = i < n - 1 ? ` -m statistic --mode nth --every ${n - i} --packet 0` : "";
      nat.push(`-A ${c.dnat} ${match}${spread} -j DNAT --to-destination ${t.to}`);
      if (t.remote) {
        const [ip, port] = t.to.split(":");
        nat.push(
          `-A ${c.post} -d ${ip}/32 -p tcp -m tcp --dport ${port} -m conntrack --ctstate DNAT --ctorigdstport ${plan.port} -j MASQUERADE`,
        );
      }
    });
    filter.push(`-A ${c.fwd} -p tcp -m conntrack --ctstate DNAT --ctorigdstport ${plan.port} -j ACCEPT`);
  }
  return { nat, filter, plans, errors };
}

/**
 * The ingress ports our DNAT chain forwards, read back from `iptables -t nat -S` lines: what a
 * previous agent (killed, so it never removed them) left in force, ascending, each once.
 */
export function forwardedPorts(c: IngressChains, natRules: readonly string[]): number[] {
  const ports = new Set<number>();
  for (const rule of natRules) {
    const m = rule.startsWith(`-A ${c.dnat} `) ? / --dport (\d+)(?: |$)/.exec(rule) : null;
    if (m) ports.add(Number(m[1]));
  }
  return [...ports].sort((a, b) => a - b);
}
