/**
 * Networks as the Engine API shows them (GET /networks, GET /networks/{id}): the predefined
 * bridge, host and none networks and the user-defined ones. Pure; field names and empty values
 * follow dockerd, because the docker CLI and compose read them.
 */
import { hexId } from "./docker-shapes";
import type { OverlayNetworkView } from "@flotilla/core";
import type { UserNetworkRecord } from "./user-network-state";

/** One entry of a network's Containers map. */
export interface DockerNetworkContainer {
  Name: string;
  EndpointID: string;
  MacAddress: string;
  IPv4Address: string;
  IPv6Address: string;
}

/** Docker's Network object. */
export interface DockerNetwork {
  Name: string;
  Id: string;
  Created: string;
  /** "swarm" for overlay networks (cluster-wide), as dockerd in swarm mode shows them. */
  Scope: "local" | "swarm";
  Driver: string;
  EnableIPv6: false;
  IPAM: {
    Driver: "default";
    Options: Record<string, string> | null;
    Config: Array<{ Subnet: string; Gateway?: string; IPRange?: string }>;
  };
  Internal: boolean;
  Attachable: boolean;
  Ingress: false;
  ConfigFrom: { Network: string };
  ConfigOnly: false;
  Containers: Record<string, DockerNetworkContainer>;
  Options: Record<string, string>;
  Labels: Record<string, string>;
}

/** The default bridge as HostNetwork runs it. */
export interface DefaultBridge {
  id: string;
  bridge: string;
  subnet: string;
  gateway: string;
  created: string;
  /** Containers attached to it (bridge mode), with their addresses. */
  endpoints: ReadonlyArray<{ containerId: string; ipAddress: string; macAddress: string; prefixLen: number }>;
}

function base(name: string, id: string, driver: string, created: string): DockerNetwork {
  return {
    Name: name,
    Id: id,
    Created: created,
    Scope: "local",
    Driver: driver,
    EnableIPv6: false,
    IPAM: { Driver: "default", Options: null, Config: [] },
    Internal: false,
    Attachable: false,
    Ingress: false,
    ConfigFrom: { Network: "" },
    ConfigOnly: false,
    Containers: {},
    Options: {},
    Labels: {},
  };
}

/** Ids of the host and none networks: stable per agent, like the bridge's. */
export function predefinedId(name: "host" | "none", bridge: string): string {
  return hexId("network", name, bridge);
}

/** The predefined networks; `names` gives a container's name by id (for Containers). */
export function predefinedNetworks(b: DefaultBridge | null, names: (id: string) => string, withContainers: boolean): DockerNetwork[] {
  const out: DockerNetwork[] = [];
  const bridgeName = b?.bridge ?? "none";
  if (b) {
    const n = base("bridge", b.id, "bridge", b.created);
    n.IPAM.Config = [{ Subnet: b.subnet, Gateway: b.gateway }];
    n.Options = { "com.docker.network.bridge.default_bridge": "true", "com.docker.network.bridge.name": b.bridge };
    if (withContainers) {
      for (const e of b.endpoints) {
        n.Containers[e.containerId] = {
          Name: names(e.containerId),
          EndpointID: hexId("endpoint", b.id, e.containerId),
          MacAddress: e.macAddress,
          IPv4Address: `${e.ipAddress}/${e.prefixLen}`,
          IPv6Address: "",
        };
      }
    }
    out.push(n);
  }
  out.push(base("host", predefinedId("host", bridgeName), "host", b?.created ?? new Date(0).toISOString()));
  out.push(base("none", predefinedId("none", bridgeName), "null", b?.created ?? new Date(0).toISOString()));
  return out;
}

/** A user-defined network; Containers only for inspect (the list leaves it empty, as dockerd). */
export function toDockerNetwork(n: UserNetworkRecord, withContainers: boolean): DockerNetwork {
  const d = base(n.name, n.id, n.driver, n.created);
  d.IPAM.Config = [{ Subnet: n.subnet, Gateway: n.gateway, ...(n.ipRange ? { IPRange: n.ipRange } : {}) }];
  d.IPAM.Options = {};
  d.Internal = n.internal;
  d.Attachable = n.attachable;
  d.Labels = { ...n.labels };
  d.Options = { ...n.options };
  if (withContainers) {
    const len = n.subnet.split("/")[1];
    for (const e of Object.values(n.endpoints)) {
      if (e.status !== "ready") continue;
      d.Containers[e.containerId] = {
        Name: e.name,
        EndpointID: hexId("endpoint", n.id, e.containerId),
        MacAddress: e.macAddress,
        IPv4Address: `${e.ipAddress}/${len}`,
        IPv6Address: "",
      };
    }
  }
  return d;
}

/**
 * An overlay network of the node's table, read-only (the control plane owns it): driver overlay,
 * scope swarm, the VXLAN id in Options as dockerd shows it. `members`: containers of this node on it.
 */
export function toOverlayDockerNetwork(
  n: OverlayNetworkView,
  members: ReadonlyArray<{ containerId: string; ip: string; mac: string; prefixLen: number }>,
  names: (id: string) => string,
  withContainers: boolean,
): DockerNetwork {
  const d = base(n.name, n.id, "overlay", new Date(0).toISOString());
  d.Scope = "swarm";
  d.IPAM.Config = [{ Subnet: n.subnet, Gateway: n.gateway }];
  d.Attachable = false;
  d.Options = { "com.docker.network.driver.overlay.vxlanid_list": String(n.vni) };
  if (withContainers) {
    for (const m of members) {
      d.Containers[m.containerId] = {
        Name: names(m.containerId),
        EndpointID: hexId("endpoint", n.id, m.containerId),
        MacAddress: m.mac,
        IPv4Address: `${m.ip}/${m.prefixLen}`,
        IPv6Address: "",
      };
    }
  }
  return d;
}
