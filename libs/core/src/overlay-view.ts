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

/** The rows every node's table is made of. */
export interface OverlayRows {
  readonly networks: readonly OverlayNetworkInfo[];
  readonly services: readonly OverlayServiceInfo[];
  readonly tasks: readonly OverlayTaskInfo[];
  readonly nodes: readonly OverlayNodeInfo[];
}

/**
 * Every node's table from one set of rows (see nodeNetworkTable). The rows are indexed once —
 * nodes by id, tasks on a node by node and by network, services by network — so a node's table
 * costs what its own networks hold, not a pass over every node and task: with a table asked for
 * on each node's heartbeat, passes over all rows were O(nodes²) per heartbeat period.
 */
export interface NodeNetworkTables {
  /** Whether the rows list the node. */
  has(nodeId: string): boolean;
  /**
   * The node's table, without its version. With `self`, that row stands for the node's own (one
   * read after the others: the node registered or changed since; the rest of the rows still hold).
   */
  table(nodeId: string, self?: OverlayNodeInfo): Omit<NodeNetworkTable, "version">;
}

/** A task on a node with its address on one network (the first it has there). */
interface Attached {
  readonly task: OverlayTaskInfo;
  readonly ip: string;
}

export function nodeNetworkTables(input: OverlayRows): NodeNetworkTables {
  const nodes = new Map(input.nodes.map((n) => [n.id, n]));
  // Only tasks on a node (ASSIGNED … RUNNING) hold addresses anyone sees, in the rows' order.
  const byNode = new Map<string, OverlayTaskInfo[]>();
  const onNetwork = new Map<string, Attached[]>();
  for (const t of input.tasks) {
    if (!t.nodeId || !ON_NODE.has(t.state)) continue;
    let own = byNode.get(t.nodeId);
    if (!own) byNode.set(t.nodeId, (own = []));
    own.push(t);
    const seen = new Set<string>();
    for (const a of t.addresses) {
      if (seen.has(a.networkId)) continue;
      seen.add(a.networkId);
      let list = onNetwork.get(a.networkId);
      if (!list) onNetwork.set(a.networkId, (list = []));
      list.push({ task: t, ip: a.ip });
    }
  }
  const servicesOn = new Map<string, OverlayServiceInfo[]>();
  for (const s of input.services)
    for (const networkId of new Set(s.networks.map((x) => x.networkId))) {
      let list = servicesOn.get(networkId);
      if (!list) servicesOn.set(networkId, (list = []));
      list.push(s);
    }
  for (const list of servicesOn.values()) list.sort(byName);
  return {
    has: (nodeId) => nodes.has(nodeId),
    table: (nodeId, self) =>
      tableOf(nodeId, self ?? nodes.get(nodeId), input.networks, nodes, byNode.get(nodeId) ?? [], onNetwork, servicesOn),
  };
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
 * For many nodes of the same rows, nodeNetworkTables indexes them once.
 */
export function nodeNetworkTable(nodeId: string, input: OverlayRows): Omit<NodeNetworkTable, "version"> {
  return nodeNetworkTables(input).table(nodeId);
}

function tableOf(
  nodeId: string,
  self: OverlayNodeInfo | undefined,
  networks: readonly OverlayNetworkInfo[],
  nodes: ReadonlyMap<string, OverlayNodeInfo>,
  own: readonly OverlayTaskInfo[],
  onNetwork: ReadonlyMap<string, readonly Attached[]>,
  servicesOn: ReadonlyMap<string, readonly OverlayServiceInfo[]>,
): Omit<NodeNetworkTable, "version"> {
  const selfAddress = overlayAddress(self);
  const mine = new Set<string>();
  for (const t of own) for (const a of t.addresses) mine.add(a.networkId);
  if (selfAddress === undefined) {
    const waiting = networks.filter((n) => mine.has(n.id)).map((n) => n.name);
    return { networks: [], unavailable: unavailableReason(nodeId, self, [...new Set(waiting)].sort()) };
  }
  // Another node's task is reachable only through a READY node with an address; this node's own
  // tasks are always listed (the agent attaches them).
  const reachable = (t: OverlayTaskInfo): string | undefined => {
    if (t.nodeId === nodeId) return selfAddress;
    const n = nodes.get(t.nodeId!);
    return n?.status === "ready" ? overlayAddress(n) : undefined;
  };

  const views: OverlayNetworkView[] = [];
  for (const net of networks) {
    if (!mine.has(net.id)) continue;
    const endpoints: OverlayEndpoint[] = [];
    const peers = new Set<string>();
    const backends = new Map<string, string[]>();
    for (const { task: t, ip } of onNetwork.get(net.id) ?? []) {
      const at = reachable(t);
      if (!at) continue;
      endpoints.push({ taskId: t.id, serviceId: t.serviceId, ip, mac: overlayMac(ip), nodeAddress: at });
      if (at !== selfAddress) peers.add(at);
      if (takesTraffic(t)) backends.set(t.serviceId, [...(backends.get(t.serviceId) ?? []), ip]);
    }
    const services = (servicesOn.get(net.id) ?? []).map((s) => {
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
