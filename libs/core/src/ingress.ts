// The routing mesh, decided purely. A port published in ingress mode belongs to the whole
// cluster: every node listens on it and forwards each connection to one of the service's
// running tasks, which publish their target port on a dynamic host port of their own node. So
// two services can never share an ingress port, and a host-mode port cannot take one either
// (it would shadow the mesh on the nodes running that task).
import { ConflictError } from "./errors";
import type { IngressTraffic, PortConfig, PortProtocol, ServiceSpec, TaskEndpoint } from "./types";

export const isHostPort = (p: Pick<PortConfig, "mode">): boolean => p.mode === "host";
export const isIngressPort = (p: Pick<PortConfig, "mode">): boolean => p.mode === "ingress";

/** A service as the mesh sees it. */
export interface MeshService {
  readonly id: string;
  readonly name: string;
  readonly ports: readonly PortConfig[];
}

/** A running task that can take connections: where its node is and what it publishes there. */
export interface MeshBackendTask {
  readonly serviceId: string;
  /** The node's address as the other nodes reach it. */
  readonly nodeAddress: string;
  readonly endpoints: readonly TaskEndpoint[];
}

export interface IngressBackend {
  readonly host: string;
  readonly port: number;
}

/** One listener of the mesh: the same on every node. */
export interface IngressPort {
  readonly port: number;
  readonly protocol: PortProtocol;
  readonly serviceId: string;
  readonly serviceName: string;
  /** Present only when local: each node forwards only to its own tasks and keeps the client's address. */
  readonly traffic?: IngressTraffic;
  readonly backends: readonly IngressBackend[];
}

const byHostPort = (a: IngressBackend, b: IngressBackend) => (a.host < b.host ? -1 : a.host > b.host ? 1 : a.port - b.port);

/**
 * The mesh's table: for each ingress port of each service, the node address and host port of
 * every task given. Ordered (ports ascending, backends by address) so equal inputs give equal
 * tables and a version can be derived from the content.
 */
export function ingressTable(services: readonly MeshService[], tasks: readonly MeshBackendTask[]): IngressPort[] {
  const tasksOf = new Map<string, MeshBackendTask[]>();
  for (const t of tasks) {
    const list = tasksOf.get(t.serviceId);
    if (list) list.push(t);
    else tasksOf.set(t.serviceId, [t]);
  }
  const table: IngressPort[] = [];
  for (const s of services) {
    for (const p of s.ports.filter(isIngressPort)) {
      const backends: IngressBackend[] = [];
      for (const t of tasksOf.get(s.id) ?? []) {
        const e = t.endpoints.find((x) => x.target === p.target && x.protocol === p.protocol);
        if (e) backends.push({ host: t.nodeAddress, port: e.hostPort });
      }
      table.push({
        port: p.published,
        protocol: p.protocol,
        serviceId: s.id,
        serviceName: s.name,
        ...(p.traffic === "local" ? { traffic: p.traffic } : {}),
        backends: backends.sort(byHostPort),
      });
    }
  }
  return table.sort((a, b) => a.port - b.port || (a.protocol < b.protocol ? -1 : 1));
}

/**
 * Refuses a spec whose published ports collide with another service's: the same port and
 * protocol where either side is in ingress mode. Two host-mode ports may coexist (the
 * scheduler keeps their tasks on different nodes). Throws ConflictError naming the port and
 * the service holding it.
 */
export function checkPublishedPorts(
  spec: Pick<ServiceSpec, "name" | "ports">,
  others: readonly Pick<ServiceSpec, "name" | "ports">[],
): void {
  spec.ports.forEach((p, i) => {
    for (const other of others) {
      if (other.name === spec.name) continue;
      const clash = other.ports.find(
        (q) => q.published === p.published && q.protocol === p.protocol && (isIngressPort(p) || isIngressPort(q)),
      );
      if (clash) {
        const how = isIngressPort(clash) ? "on every node (ingress mode)" : "in host mode";
        throw new ConflictError(`port ${p.published}/${p.protocol} is already published by service "${other.name}" ${how}`, {
          field: `ports[${i}].published`,
          value: p.published,
          service: other.name,
        });
      }
    }
  });
}
