// Each node's view of the overlay networks (the NodeNetworkTable of overlay-table.ts), decided
// purely from the rows: which networks the node takes part in, which other nodes it floods to,
// where every task's address lives and which addresses take a service's traffic. Ordered
// throughout so equal inputs give equal tables, and a version can be a digest of the content.
import { overlayMac, type EndpointMode, type NodeNetworkTable, type OverlayEndpoint, type OverlayNetworkView } from "./overlay-table";
import { parseIpv4 } from "./overlay";
import type { DesiredState, NodeStatus, TaskState } from "./types";

export interface OverlayNetworkInfo {
  readonly id: string;
  readonly name: string;
  readonly vni: number;
  readonly subnet: string;
  readonly gateway: string;
}

export interface OverlayServiceInfo {
  readonly id: string;
  readonly name: string;
  readonly endpointMode: EndpointMode;
  /** The service's attachments (network ids) with their aliases. */
  readonly networks: readonly { readonly networkId: string; readonly aliases: readonly string[] }[];
  /** Its VIPs, one per network (none with dnsrr). */
  readonly vips: readonly { readonly networkId: string; readonly ip: string }[];
}

export interface OverlayTaskInfo {
  readonly id: string;
  readonly serviceId: string;
  readonly nodeId?: string;
  readonly state: TaskState;
  readonly desiredState: DesiredState;
  /** The task's addresses, one per network of its service. */
  readonly addresses: readonly { readonly networkId: string; readonly ip: string }[];
}

export interface OverlayNodeInfo {
  readonly id: string;
  readonly status: NodeStatus;
  /** The underlay address other nodes reach it at; absent when it has none (a unix-socket engine). */
  readonly address?: string;
  /** The engine URL it registered with, named when it gives no usable address. */
  readonly engineUrl?: string;
}

/**
 * ASSIGNED … RUNNING: the task is on its node and holds its addresses, whether its container is
 * being created (the agent attaches it at create) or runs. NEW/PENDING tasks have no node yet;
 * a terminal task's addresses are free again.
 */
export const ADDRESSED_TASK_STATES = ["ASSIGNED", "ACCEPTED", "PREPARING", "STARTING", "RUNNING"] as const satisfies readonly TaskState[];
const ON_NODE: ReadonlySet<TaskState> = new Set(ADDRESSED_TASK_STATES);

/** Whether the task takes traffic: RUNNING (healthy, when it has a health check) and wanted. */
const takesTraffic = (t: OverlayTaskInfo) => t.state === "RUNNING" && t.desiredState === "running";

/** Numeric for IPv4 addresses, then by text: a total order. */
const byIp = (a: string, b: string) => {
  const x = parseIpv4(a);
  const y = parseIpv4(b);
  if (x !== undefined && y !== undefined && x !== y) return x - y;
  return a < b ? -1 : a > b ? 1 : 0;
};
const byName = <T extends { readonly name: string; readonly id: string }>(a: T, b: T) =>
  a.name < b.name ? -1 : a.name > b.name ? 1 : a.id < b.id ? -1 : a.id > b.id ? 1 : 0;

/** The address a node takes part in overlays with: VXLAN tunnels end at an IPv4 address, never at a name. */
function overlayAddress(node: OverlayNodeInfo | undefined): string | undefined {
  return node?.address !== undefined && parseIpv4(node.address) !== undefined ? node.address : undefined;
}

/** Why `node` (undefined: not among the rows) cannot take part in overlays, naming the networks its tasks wait on. */
function unavailableReason(nodeId: string, node: OverlayNodeInfo | undefined, waiting: readonly string[]): string {
  const why = !node
    ? `node ${nodeId} is not registered`
    : node.address !== undefined
      ? `its address ${JSON.stringify(node.address)} (engine URL ${node.engineUrl ?? "unknown"}) is not an IPv4 address, and VXLAN tunnels need one`
      : `its engine URL ${node.engineUrl ?? "(none)"} gives no underlay address (only an http(s)://<IPv4>:<port> engine URL does)`;
  return waiting.length ? `${why}; its tasks on ${waiting.join(", ")} cannot be attached` : why;
}

/**
 * The table of node `nodeId`, without its version (the caller digests the content). A node
 * without an IPv4 underlay address (a unix-socket or named engine URL), or one the rows do not
 * list, takes part in no network: its table has no address and no networks, and `unavailable`
 * says why, so its agent applies that once instead of refusing a table naming no address. Else:
 * - networks: those on which a task on this node (ASSIGNED … RUNNING) has an address;
 * - endpoints: every task on the network that is on a node (ASSIGNED … RUNNING), on this node or
 *   on another READY node with an address;
 * - peers: the addresses of the other READY nodes that have such a task on the network;
 * - services: every service attached to the network, with its VIP (vip mode) and aliases;
 *   backends are the addresses of its RUNNING tasks whose desired state is running.
 */
export function nodeNetworkTable(
  nodeId: string,
  input: {
    readonly networks: readonly OverlayNetworkInfo[];
    readonly services: readonly OverlayServiceInfo[];
    readonly tasks: readonly OverlayTaskInfo[];
    readonly nodes: readonly OverlayNodeInfo[];
  },
): Omit<NodeNetworkTable, "version"> {
  const nodes = new Map(input.nodes.map((n) => [n.id, n]));
  const self = nodes.get(nodeId);
  const selfAddress = overlayAddress(self);
  const mine = new Set<string>();
  for (const t of input.tasks) if (t.nodeId === nodeId && ON_NODE.has(t.state)) for (const a of t.addresses) mine.add(a.networkId);
  if (selfAddress === undefined) {
    const waiting = input.networks.filter((n) => mine.has(n.id)).map((n) => n.name);
    return { networks: [], unavailable: unavailableReason(nodeId, self, [...new Set(waiting)].sort()) };
  }
  // Another node's task is reachable only through a READY node with an address; this node's own
  // tasks are always listed (the agent attaches them).
  const reachable = (t: OverlayTaskInfo): string | undefined => {
    if (!t.nodeId || !ON_NODE.has(t.state)) return undefined;
    if (t.nodeId === nodeId) return selfAddress;
    const n = nodes.get(t.nodeId);
    return n?.status === "ready" ? overlayAddress(n) : undefined;
  };

  const views: OverlayNetworkView[] = [];
  for (const net of input.networks) {
    if (!mine.has(net.id)) continue;
    const endpoints: OverlayEndpoint[] = [];
    const peers = new Set<string>();
    const backends = new Map<string, string[]>();
    for (const t of input.tasks) {
      const at = reachable(t);
      const a = at && t.addresses.find((x) => x.networkId === net.id);
      if (!at || !a) continue;
      endpoints.push({ taskId: t.id, serviceId: t.serviceId, ip: a.ip, mac: overlayMac(a.ip), nodeAddress: at });
      if (at !== selfAddress) peers.add(at);
      if (takesTraffic(t)) backends.set(t.serviceId, [...(backends.get(t.serviceId) ?? []), a.ip]);
    }
    const services = input.services
      .filter((s) => s.networks.some((x) => x.networkId === net.id))
      .sort(byName)
      .map((s) => {
        const vip = s.endpointMode === "vip" ? s.vips.find((v) => v.networkId === net.id)?.ip : undefined;
        const aliases = s.networks.find((x) => x.networkId === net.id)!.aliases;
        return {
          id: s.id,
          name: s.name,
          endpointMode: s.endpointMode,
          ...(vip ? { vip } : {}),
          aliases: [...new Set(aliases)].sort(),
          backends: (backends.get(s.id) ?? []).sort(byIp),
        };
      });
    views.push({
      id: net.id,
      name: net.name,
      vni: net.vni,
      subnet: net.subnet,
      gateway: net.gateway,
      peers: [...peers].sort(byIp),
      endpoints: endpoints.sort((a, b) => byIp(a.ip, b.ip) || (a.taskId < b.taskId ? -1 : 1)),
      services,
    });
  }
  return { nodeAddress: selfAddress, networks: views.sort(byName) };
}
