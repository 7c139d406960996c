// The contract between the control plane and the agents for overlay networks: what one node
// must know to take part in them. The control plane decides it (IPAM in Postgres, a pure
// function here builds each node's view) and pushes it to the node's agent, which turns it into
// kernel state: a bridge and a VXLAN device per network, forwarding entries to the other nodes,
// each container's address on the segment, VIP load balancing and DNS names. Everything the
// agent applies comes from this table, so a table is the whole truth for its version: entries
// missing from a newer table are removed.

/** How a service's name resolves on a network (as `docker service create --endpoint-mode`). */
export type EndpointMode = "vip" | "dnsrr";

/** A task's address on one overlay network. */
export interface OverlayEndpoint {
  readonly taskId: string;
  readonly serviceId: string;
  /** The task's container address on the network (in the network's subnet). */
  readonly ip: string;
  /** The container interface's MAC on the segment: 02:42 then the four bytes of `ip`. */
  readonly mac: string;
  /** The underlay address of the node the task runs on (its VXLAN tunnel end point). */
  readonly nodeAddress: string;
}

/** A service attached to an overlay network, as its DNS names and VIP see it. */
export interface OverlayService {
  readonly id: string;
  readonly name: string;
  readonly endpointMode: EndpointMode;
  /** The service's virtual IP on this network; absent with endpointMode "dnsrr". */
  readonly vip?: string;
  /** Extra DNS names on this network (`--network name=N,alias=A`). */
  readonly aliases: readonly string[];
  /**
   * Addresses of the tasks that take traffic: RUNNING (and healthy when the service has a
   * health check). The VIP balances over these; `tasks.NAME` and dnsrr answer these.
   */
  readonly backends: readonly string[];
}

/** One overlay network as one node sees it: the node takes part because a task of it runs here. */
export interface OverlayNetworkView {
  readonly id: string;
  readonly name: string;
  /** VXLAN network identifier, unique in the cluster (4096..16777215). */
  readonly vni: number;
  /** IPv4 CIDR, e.g. "10.0.1.0/24". */
  readonly subnet: string;
  /** Reserved in the subnet (never given to a task or VIP); no container routes through it. */
  readonly gateway: string;
  /** Underlay addresses of every other node taking part (flood list for broadcast/ARP). */
  readonly peers: readonly string[];
  /** Every task endpoint on the network, on this node and on others. */
  readonly endpoints: readonly OverlayEndpoint[];
  readonly services: readonly OverlayService[];
}

/** What `GET /api/v1/nodes/networks?version=V` answers an agent (204 while unchanged). */
export interface NodeNetworkTable {
  /** Opaque; changes whenever the content does. */
  readonly version: string;
  /**
   * The node's own underlay address (IPv4: its VXLAN tunnels end there), as the other nodes reach
   * it. Absent when the node has none: then `networks` is empty and `unavailable` says why.
   */
  readonly nodeAddress?: string;
  readonly networks: readonly OverlayNetworkView[];
  /** Why the node takes part in no overlay network (it has no IPv4 underlay address); absent when it can. */
  readonly unavailable?: string;
}

/*
 * A task's attachments travel in its container create call the Docker way:
 * `NetworkingConfig.EndpointsConfig[<network name>] = { NetworkID: <id>, IPAMConfig: { IPv4Address: <ip> },
 * Aliases: [...] }`, with the container's primary network left as it is (the node's default bridge, for
 * egress and published ports). An agent that does not yet know the network asks the control plane for its
 * table once before refusing the create.
 */

/** The MAC a container gets on an overlay network: 02:42 followed by its IPv4 address's bytes. */
export function overlayMac(ip: string): string {
  const bytes = ip.split(".").map((b) => Number(b).toString(16).padStart(2, "0"));
  return ["02", "42", ...bytes].join(":");
}
