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
  /** May be empty: connections are then accepted and closed at once. */
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
