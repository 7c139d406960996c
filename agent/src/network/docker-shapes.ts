/**
 * The network parts of Docker's container JSON, built from an endpoint. Pure. Field names and
 * empty values follow what dockerd returns, because the docker CLI and compose read them.
 */
import { createHash } from "node:crypto";
import type { Endpoint } from "./endpoint";

/** `{"HostIp": "0.0.0.0", "HostPort": "8000"}`: Docker writes the port as a string. */
export interface DockerPortBinding {
  HostIp: string;
  HostPort: string;
}

/** `"80/tcp"` → its bindings, or null for a port exposed but not published. */
export type DockerPortMap = Record<string, DockerPortBinding[] | null>;

/** One entry of NetworkSettings.Networks. */
export interface DockerEndpointSettings {
  IPAMConfig: null;
  Links: null;
  Aliases: null;
  MacAddress: string;
  DriverOpts: null;
  NetworkID: string;
  EndpointID: string;
  Gateway: string;
  IPAddress: string;
  IPPrefixLen: number;
  IPv6Gateway: string;
  GlobalIPv6Address: string;
  GlobalIPv6PrefixLen: number;
  DNSNames: null;
}

/** Container inspect's NetworkSettings. */
export interface DockerNetworkSettings {
  Bridge: string;
  SandboxID: string;
  SandboxKey: string;
  Ports: DockerPortMap;
  HairpinMode: boolean;
  LinkLocalIPv6Address: string;
  LinkLocalIPv6PrefixLen: number;
  SecondaryIPAddresses: null;
  SecondaryIPv6Addresses: null;
  EndpointID: string;
  Gateway: string;
  GlobalIPv6Address: string;
  GlobalIPv6PrefixLen: number;
  IPAddress: string;
  IPPrefixLen: number;
  IPv6Gateway: string;
  MacAddress: string;
  Networks: Record<string, DockerEndpointSettings>;
}

/** One entry of the container list's `Ports`. */
export interface DockerPortSummary {
  IP?: string;
  PrivatePort: number;
  PublicPort?: number;
  Type: string;
}

/** A stable 64-hex id, as Docker's network and endpoint ids look. */
export function hexId(...parts: string[]): string {
  return createHash("sha256").update(parts.join("\0")).digest("hex");
}

/** Docker names its default networks after their mode: "bridge", "host", "none". */
function networkName(e: Endpoint): string {
  return e.mode;
}

/**
 * NetworkSettings for container inspect. `exposedPorts` (`"80/tcp"`, from the image and the
 * container config) appear with null bindings when not published, as in Docker.
 */
export function toNetworkSettings(e: Endpoint, networkId: string, exposedPorts: readonly string[] = []): DockerNetworkSettings {
  const ports: DockerPortMap = {};
  for (const key of exposedPorts) ports[key.includes("/") ? key : `${key}/tcp`] = null;
  for (const p of e.ports) {
    const key = `${p.containerPort}/${p.protocol}`;
    (ports[key] ??= []).push({ HostIp: p.hostIp, HostPort: String(p.hostPort) });
  }
  const endpointId = hexId("endpoint", networkId, e.containerId);
  const network: DockerEndpointSettings = {
    IPAMConfig: null,
    Links: null,
    Aliases: null,
    MacAddress: e.macAddress,
    DriverOpts: null,
    NetworkID: e.mode === "bridge" ? networkId : hexId("network", e.mode),
    EndpointID: endpointId,
    Gateway: e.gateway,
    IPAddress: e.ipAddress,
    IPPrefixLen: e.prefixLen,
    IPv6Gateway: "",
    GlobalIPv6Address: "",
    GlobalIPv6PrefixLen: 0,
    DNSNames: null,
  };
  return {
    Bridge: "",
    SandboxID: hexId("sandbox", e.containerId),
    SandboxKey: e.netnsPath ?? "",
    Ports: ports,
    HairpinMode: false,
    LinkLocalIPv6Address: "",
    LinkLocalIPv6PrefixLen: 0,
    SecondaryIPAddresses: null,
    SecondaryIPv6Addresses: null,
    EndpointID: e.mode === "bridge" ? endpointId : "",
    Gateway: e.gateway,
    GlobalIPv6Address: "",
    GlobalIPv6PrefixLen: 0,
    IPAddress: e.ipAddress,
    IPPrefixLen: e.prefixLen,
    IPv6Gateway: "",
    MacAddress: e.macAddress,
    Networks: { [networkName(e)]: network },
  };
}

/** The container list's `Ports`: published ports, then exposed-only ones, sorted like Docker. */
export function toPortSummaries(e: Endpoint, exposedPorts: readonly string[] = []): DockerPortSummary[] {
  const out: DockerPortSummary[] = e.ports.map((p) => ({
    IP: p.hostIp,
    PrivatePort: p.containerPort,
    PublicPort: p.hostPort,
    Type: p.protocol,
  }));
  for (const key of exposedPorts) {
    const [port, proto = "tcp"] = key.split("/");
    if (!e.ports.some((p) => String(p.containerPort) === port && p.protocol === proto))
      out.push({ PrivatePort: Number(port), Type: proto });
  }
  return out.sort((a, b) => a.PrivatePort - b.PrivatePort || (a.PublicPort ?? 0) - (b.PublicPort ?? 0));
}
