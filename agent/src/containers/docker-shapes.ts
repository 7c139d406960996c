/**
 * Container records rendered as the Engine API returns them: GET /containers/{id}/json (inspect)
 * and the elements of GET /containers/json (summary). Pure.
 */
import { hexId } from "../network/docker-shapes";
import type { ContainerRecord, MountSpec, PortBinding } from "./container-types";

const ZERO_TIME = "0001-01-01T00:00:00Z";

/** Docker's HumanDuration: "Less than a second", "5 seconds", "About a minute", "3 hours"… */
export function humanDuration(ms: number): string {
  const s = Math.floor(ms / 1000);
  if (s < 1) return "Less than a second";
  if (s === 1) return "1 second";
  if (s < 60) return `${s} seconds`;
  const m = Math.floor(s / 60);
  if (m === 1) return "About a minute";
  if (m < 60) return `${m} minutes`;
  const h = Math.round(m / 60);
  if (h === 1) return "About an hour";
  if (h < 48) return `${h} hours`;
  if (h < 24 * 7 * 2) return `${Math.floor(h / 24)} days`;
  if (h < 24 * 30 * 2) return `${Math.floor(h / 24 / 7)} weeks`;
  if (h < 24 * 365 * 2) return `${Math.floor(h / 24 / 30)} months`;
  return `${Math.floor(h / 24 / 365)} years`;
}

/** The STATUS column of `docker ps`. */
export function statusText(c: ContainerRecord, now = Date.now()): string {
  const since = (t: string | null) => humanDuration(Math.max(0, now - Date.parse(t ?? new Date(now).toISOString())));
  switch (c.state.status) {
    case "running": {
      const health = c.state.health ? ` (${c.state.health.Status === "starting" ? "health: starting" : c.state.health.Status})` : "";
      return `Up ${since(c.state.startedAt)}${c.state.paused ? " (Paused)" : health}`;
    }
    case "restarting":
      return `Restarting (${c.state.exitCode}) ${since(c.state.finishedAt)} ago`;
    case "exited":
      return `Exited (${c.state.exitCode}) ${since(c.state.finishedAt)} ago`;
    case "removing":
      return "Removal In Progress";
    case "dead":
      return "Dead";
    default:
      return "Created";
  }
}

function portKey(p: Pick<PortBinding, "containerPort" | "protocol">): string {
  return `${p.containerPort}/${p.protocol}`;
}

/** The ports actually published (from the network module) or, before start, none. */
function livePorts(c: ContainerRecord): PortBinding[] {
  return c.state.status === "running" ? (c.network?.ports ?? []) : [];
}

/** NetworkSettings.Ports: every exposed port, with its host bindings while running. */
export function portsMap(c: ContainerRecord): Record<string, Array<{ HostIp: string; HostPort: string }> | null> {
  const out: Record<string, Array<{ HostIp: string; HostPort: string }> | null> = {};
  if (c.networkMode === "host" || c.networkMode === "none") return out;
  for (const key of Object.keys(c.config.ExposedPorts ?? {})) out[key] = null;
  for (const p of livePorts(c)) {
    const list = (out[portKey(p)] ??= []);
    list.push({ HostIp: p.hostIp || "0.0.0.0", HostPort: String(p.hostPort) });
  }
  return out;
}

/** The Mounts list of inspect and summary. */
export function mountPoints(c: ContainerRecord, volumePath: (name: string) => string) {
  return c.mounts.map((m: MountSpec) => {
    if (m.type === "bind")
      return {
        Type: "bind",
        Source: m.source,
        Destination: m.target,
        Mode: m.readOnly ? "ro" : "",
        RW: !m.readOnly,
        Propagation: "rprivate",
      };
    if (m.type === "volume")
      return {
        Type: "volume",
        Name: m.name,
        Source: volumePath(m.name),
        Destination: m.target,
        Driver: "local",
        Mode: m.readOnly ? "ro" : "z",
        RW: !m.readOnly,
        Propagation: "",
      };
    return { Type: "tmpfs", Source: "", Destination: m.target, Mode: "", RW: true, Propagation: "" };
  });
}

/** NetworkSettings.Networks: the mode's network, or each user network, keyed by name. */
function networkEntries(c: ContainerRecord): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  if (c.networkMode !== "user") out[c.networkMode] = networkEntry(c);
  const live = c.state.status === "running" ? (c.network?.user ?? []) : [];
  for (const n of c.networks ?? []) {
    const u = live.find((x) => x.networkId === n.networkId);
    out[n.name] = {
      IPAMConfig: n.ipv4Address ? { IPv4Address: n.ipv4Address } : null,
      Links: null,
      Aliases: n.aliases.length ? [...n.aliases] : null,
      NetworkID: n.networkId,
      EndpointID: u ? hexId("endpoint", n.networkId, c.id) : "",
      Gateway: u?.gateway ?? "",
      IPAddress: u?.ipAddress ?? "",
      IPPrefixLen: u?.prefixLen ?? 0,
      IPv6Gateway: "",
      GlobalIPv6Address: "",
      GlobalIPv6PrefixLen: 0,
      MacAddress: u?.macAddress ?? "",
      DNSNames: u ? [...new Set([c.name.slice(1), c.id.slice(0, 12), ...n.aliases])] : null,
    };
  }
  return out;
}

function networkEntry(c: ContainerRecord) {
  const n = c.state.status === "running" ? c.network : null;
  return {
    IPAMConfig: null,
    Links: null,
    Aliases: null,
    NetworkID: c.networkMode,
    EndpointID: n?.ipAddress ? c.id : "",
    Gateway: n?.gateway ?? "",
    IPAddress: n?.ipAddress ?? "",
    IPPrefixLen: n?.prefixLen ?? 0,
    IPv6Gateway: "",
    GlobalIPv6Address: "",
    GlobalIPv6PrefixLen: 0,
    MacAddress: n?.macAddress ?? "",
  };
}

export interface InspectPaths {
  root: string;
  logPath: string;
  volumePath: (name: string) => string;
}

/** GET /containers/{id}/json. */
export function toContainerInspect(c: ContainerRecord, paths: InspectPaths) {
  const s = c.state;
  // Docker fills the top-level addresses for the default bridge only.
  const n = s.status === "running" && c.networkMode === "bridge" ? c.network : null;
  return {
    Id: c.id,
    Created: c.created,
    Path: c.path,
    Args: c.args,
    State: {
      Status: s.status === "running" && s.paused ? "paused" : s.status,
      Running: s.status === "running",
      Paused: s.status === "running" && !!s.paused,
      Restarting: s.status === "restarting",
      OOMKilled: s.oomKilled,
      Dead: s.status === "dead",
      Pid: s.status === "running" ? s.pid : 0,
      ExitCode: s.exitCode,
      Error: s.error,
      StartedAt: s.startedAt ?? ZERO_TIME,
      FinishedAt: s.finishedAt ?? ZERO_TIME,
      ...(s.health ? { Health: s.health } : {}),
    },
    Image: c.imageId,
    ResolvConfPath: `${paths.root}/resolv.conf`,
    HostnamePath: `${paths.root}/hostname`,
    HostsPath: `${paths.root}/hosts`,
    LogPath: paths.logPath,
    Name: c.name,
    RestartCount: c.restartCount,
    Driver: "overlay2",
    Platform: "linux",
    MountLabel: "",
    ProcessLabel: "",
    AppArmorProfile: "",
    ExecIDs: null,
    HostConfig: c.hostConfig,
    GraphDriver: { Name: "overlay2", Data: { UpperDir: `${paths.root}/rootfs/upper`, WorkDir: `${paths.root}/rootfs/work` } },
    Mounts: mountPoints(c, paths.volumePath),
    Config: c.config,
    NetworkSettings: {
      Bridge: "",
      SandboxID: "",
      SandboxKey: "",
      HairpinMode: false,
      Ports: portsMap(c),
      Gateway: n?.gateway ?? "",
      IPAddress: n?.ipAddress ?? "",
      IPPrefixLen: n?.prefixLen ?? 0,
      MacAddress: n?.macAddress ?? "",
      GlobalIPv6Address: "",
      GlobalIPv6PrefixLen: 0,
      IPv6Gateway: "",
      Networks: networkEntries(c),
    },
  };
}

/** One element of GET /containers/json. */
export function toContainerSummary(c: ContainerRecord, volumePath: (name: string) => string, now = Date.now()) {
  const ports: Array<{ IP?: string; PrivatePort: number; PublicPort?: number; Type: string }> = [];
  const published = new Set<string>();
  for (const p of livePorts(c)) {
    ports.push({ IP: p.hostIp || "0.0.0.0", PrivatePort: p.containerPort, PublicPort: p.hostPort, Type: p.protocol });
    published.add(portKey(p));
  }
  // Exposed-only ports are shown for running containers, as `docker ps` does.
  if ((c.networkMode === "bridge" || c.networkMode === "user") && c.state.status === "running") {
    for (const key of Object.keys(c.config.ExposedPorts ?? {})) {
      if (published.has(key)) continue;
      const [port, proto] = key.split("/");
      ports.push({ PrivatePort: Number(port), Type: proto ?? "tcp" });
    }
  }
  return {
    Id: c.id,
    Names: [c.name],
    Image: c.image,
    ImageID: c.imageId,
    Command: [c.path, ...c.args].map((a) => (/\s/.test(a) ? `'${a}'` : a)).join(" "),
    Created: Math.floor(Date.parse(c.created) / 1000),
    Ports: ports,
    Labels: c.config.Labels,
    State: c.state.status === "running" && c.state.paused ? "paused" : c.state.status,
    Status: statusText(c, now),
    HostConfig: { NetworkMode: c.hostConfig.NetworkMode },
    NetworkSettings: { Networks: networkEntries(c) },
    Mounts: mountPoints(c, volumePath),
  };
}
