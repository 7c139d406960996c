/** What attach() returns and list() holds: one container's place on the host network. */
import type { PublishedPort } from "./ports";
import type { EndpointRecord, NetworkMode } from "./state-file";

/** A container's network as the agent sees it; attach() returns it, list() and get() give it. */
export interface Endpoint {
  containerId: string;
  mode: NetworkMode;
  /**
   * Namespace for the shim's `--netns PATH` (`/run/netns/flt-…`); null in host mode, which
   * means `--netns host`.
   */
  netnsPath: string | null;
  /** Container address on the bridge; "" in host and none modes (Docker's empty values). */
  ipAddress: string;
  gateway: string;
  macAddress: string;
  /** 0 unless bridge mode. */
  prefixLen: number;
  /** Published ports with host ports resolved (never 0). Empty unless bridge mode. */
  ports: PublishedPort[];
  /** Host end of the veth pair (`veth1a2b3c4`), null unless bridge mode. */
  hostInterface: string | null;
}

/** The public view of a stored record; netnsDir is where `ip netns` pins namespaces. */
export function toEndpoint(r: EndpointRecord, netnsDir: string): Endpoint {
  return {
    containerId: r.containerId,
    mode: r.mode,
    netnsPath: r.netns ? `${netnsDir}/${r.netns}` : null,
    ipAddress: r.ipAddress,
    gateway: r.gateway,
    macAddress: r.macAddress,
    prefixLen: r.prefixLen,
    ports: r.ports.map((p) => ({ ...p })),
    hostInterface: r.veth,
  };
}
