/**
 * The ingress routing table as the control plane sends it in heartbeat replies. The API mirrors
 * these types: change both together.
 */

/** Where one task of a service answers: the node's address and the task's dynamic host port. */
export interface IngressBackend {
  host: string;
  port: number;
}

/** One published port of a service, served on every node. */
export interface IngressPort {
  /** Listened on at 0.0.0.0 in the agent's network namespace. */
  port: number;
  protocol: "tcp";
  serviceId: string;
  serviceName: string;
  /**
   * cluster (default): any task answers, on this node or another. local: only tasks on the
   * receiving node, and the client's address is kept (no SNAT); a node without one refuses.
   */
  traffic?: "cluster" | "local";
  /** May be empty: connections are then refused (kernel) or accepted and closed (proxy). */
  backends: IngressBackend[];
}

/** The whole table; each delivery replaces the previous one. */
export interface IngressTable {
  /** Opaque; changes whenever the table does. */
  version: string;
  ports: IngressPort[];
}

/** A listed port the agent does not serve, and why (bind failure or an invalid entry). */
export interface IngressPortError {
  port: number;
  message: string;
}

/** What apply() did not manage; every other port of the table is served. */
export interface IngressApplyResult {
  errors: IngressPortError[];
}

/**
 * What serves the table on this node: the kernel's rules (ingress-kernel.ts) or, where iptables
 * is missing, the userland proxy (ingress-proxy.ts).
 */
export interface IngressDataPlane {
  /** "kernel" or "proxy", for logs. */
  readonly kind: "kernel" | "proxy";
  /** Version of the last table applied in full; undefined before the first or while a port is not served. */
  readonly version: string | undefined;
  /** Makes `table` the routing table; resolves with the ports it could not serve. */
  apply(table: IngressTable): Promise<IngressApplyResult>;
  /**
   * Re-reads what this node runs (its containers' published ports) and brings the rules in line
   * with the last table; nothing to do for the proxy. Called with every heartbeat.
   */
  refresh(): Promise<void>;
  /** Stops serving: the proxy closes its sockets, the kernel's rules and chains are removed. */
  close(): Promise<void>;
}
