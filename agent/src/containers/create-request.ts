/**
 * POST /containers/create: validates Docker's request body and merges in the image's defaults.
 * Pure: everything the agent needs to create the container, or an InvalidError/NotSupportedError
 * naming the field, before anything touches the disk.
 */
import { posix } from "node:path";
import { InvalidError, NotSupportedError } from "@flotilla/core";
import { mergeHealthcheck } from "../health/health-config";
import type { ContainerDefaults } from "../images";
import { logLimits } from "./log-options";
import { capabilityMask, checkBodyTypes, checkSecurityOpt, parseNameSettings, refuseUnsupportedHostConfig } from "./host-options";
import type {
  ContainerConfig,
  ContainerSpec,
  HostConfig,
  MountSpec,
  NetworkModeName,
  PortBinding,
  PortProtocol,
  RestartPolicyName,
} from "./container-types";

export type { ContainerSpec } from "./container-types";

/** The parts of a create request body we read (Docker's ContainerConfig + HostConfig). */
export interface CreateBody {
  Hostname?: string;
  Domainname?: string;
  User?: string;
  Env?: string[] | null;
  Cmd?: string[] | string | null;
  Entrypoint?: string[] | string | null;
  Image?: string;
  WorkingDir?: string;
  Labels?: Record<string, string> | null;
  ExposedPorts?: Record<string, object> | null;
  Volumes?: Record<string, object> | null;
  Tty?: boolean;
  OpenStdin?: boolean;
  AttachStdin?: boolean;
  AttachStdout?: boolean;
  AttachStderr?: boolean;
  StdinOnce?: boolean;
  StopSignal?: string;
  StopTimeout?: number | null;
  Healthcheck?: unknown;
  HostConfig?: HostConfigBody | null;
  NetworkingConfig?: NetworkingConfigBody | null;
  /** Flotilla's own: a task's secret and config files (task-files.ts); never part of the spec kept. */
  FlotillaFiles?: unknown;
}

export interface HostConfigBody {
  Binds?: string[] | null;
  Mounts?: Array<{
    Type?: string;
    Source?: string;
    Target?: string;
    ReadOnly?: boolean;
    TmpfsOptions?: { SizeBytes?: number } | null;
  }> | null;
  Tmpfs?: Record<string, string> | null;
  PortBindings?: Record<string, Array<{ HostIp?: string; HostPort?: string }> | null> | null;
  PublishAllPorts?: boolean;
  Memory?: number;
  MemorySwap?: number;
  NanoCpus?: number;
  CpuShares?: number;
  CpuPeriod?: number;
  CpuQuota?: number;
  PidsLimit?: number | null;
  RestartPolicy?: { Name?: string; MaximumRetryCount?: number } | null;
  ReadonlyRootfs?: boolean;
  NetworkMode?: string;
  AutoRemove?: boolean;
  Privileged?: boolean;
  CapAdd?: string[] | null;
  CapDrop?: string[] | null;
  Dns?: string[] | null;
  DnsSearch?: string[] | null;
  DnsOptions?: string[] | null;
  ExtraHosts?: string[] | null;
  SecurityOpt?: string[] | null;
  Devices?: unknown[] | null;
  LogConfig?: { Type?: string; Config?: Record<string, string> | null } | null;
  /** Anything else Docker sends; refused unless at its zero value (host-options.ts). */
  [other: string]: unknown;
}

/** NetworkingConfig of a create request: per network, its aliases and a fixed address. */
export interface NetworkingConfigBody {
  EndpointsConfig?: Record<string, EndpointConfigBody | null> | null;
}

/** One network's EndpointSettings as clients send them (create, network connect). */
export interface EndpointConfigBody {
  IPAMConfig?: { IPv4Address?: string; IPv6Address?: string; LinkLocalIPs?: string[] | null } | null;
  Links?: string[] | null;
  Aliases?: string[] | null;
  MacAddress?: string;
  DriverOpts?: Record<string, string> | null;
}

const NAME = /^\/?[a-zA-Z0-9][a-zA-Z0-9_.-]+$/;

/** `/?[a-zA-Z0-9][a-zA-Z0-9_.-]+`; returns the name with its leading slash. */
export function validateName(name: string): string {
  if (!NAME.test(name))
    throw new InvalidError(`Invalid container name (${name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed`, { field: "name" });
  return name.startsWith("/") ? name : `/${name}`;
}

const MIN_MEMORY = 6 * 1024 * 1024;
/** Processes (threads) a container may have unless it asks otherwise. */
export const DEFAULT_PIDS_LIMIT = 1024;

function stringList(value: unknown, field: string): string[] | null {
  if (value === undefined || value === null) return null;
  if (typeof value === "string") return [value];
  if (!Array.isArray(value) || value.some((v) => typeof v !== "string"))
    throw new InvalidError(`${field} must be a list of strings`, { field });
  return value as string[];
}

function nonNegative(value: unknown, field: string): number {
  if (value === undefined || value === null) return 0;
  if (typeof value !== "number" || !Number.isInteger(value) || value < 0)
    throw new InvalidError(`invalid ${field}: ${String(value)}`, { field });
  return value;
}

/** `80`, `80/tcp`, `53/udp` → [port, protocol]. */
export function parseContainerPort(key: string): [number, PortProtocol] {
  const m = /^(\d+)(?:\/(tcp|udp|sctp))?$/.exec(key);
  const port = m ? Number(m[1]) : NaN;
  if (!m || port < 1 || port > 65535) throw new InvalidError(`invalid port specification: "${key}"`, { field: "PortBindings" });
  if (m[2] === "sctp") throw new NotSupportedError("sctp ports are not supported", { field: "PortBindings" });
  return [port, (m[2] ?? "tcp") as PortProtocol];
}

function parseHostPort(value: string | undefined): number {
  if (value === undefined || value === "") return 0;
  const port = /^\d+$/.test(value) ? Number(value) : NaN;
  if (!(port >= 0 && port <= 65535)) throw new InvalidError(`invalid port specification: "${value}"`, { field: "PortBindings" });
  return port;
}

function parsePortBindings(body: HostConfigBody["PortBindings"]): { ports: PortBinding[]; shape: HostConfig["PortBindings"] } {
  const ports: PortBinding[] = [];
  const shape: HostConfig["PortBindings"] = {};
  for (const [key, list] of Object.entries(body ?? {})) {
    const [containerPort, protocol] = parseContainerPort(key);
    shape[`${containerPort}/${protocol}`] = [];
    for (const b of list ?? []) {
      const hostIp = b.HostIp ?? "";
      if (hostIp && !/^(\d{1,3}\.){3}\d{1,3}$/.test(hostIp))
        throw new InvalidError(`invalid IP address: ${hostIp}`, { field: "PortBindings" });
      const hostPort = parseHostPort(b.HostPort);
      ports.push({ containerPort, protocol, hostIp, hostPort });
      shape[`${containerPort}/${protocol}`]!.push({ HostIp: hostIp, HostPort: b.HostPort ?? "" });
    }
  }
  return { ports, shape };
}

function checkTarget(target: string | undefined, field: string): string {
  if (!target || !posix.isAbsolute(target))
    throw new InvalidError(`invalid mount config: mount path must be absolute: ${target ?? ""}`, { field });
  if (/[,:\\]/.test(target)) throw new InvalidError(`invalid mount path ${target}: ',', ':' and '\\' are not supported`, { field });
  const clean = posix.normalize(target);
  if (clean === "/") throw new InvalidError("invalid specification: destination can't be '/'", { field });
  return clean;
}

/** `src:dst[:opts]` of HostConfig.Binds: an absolute src binds a host path, anything else names a volume. */
export function parseBind(bind: string): MountSpec {
  const parts = bind.split(":");
  if (parts.length < 2 || parts.length > 3 || !parts[0])
    throw new InvalidError(`invalid volume specification: '${bind}'`, { field: "Binds" });
  const [src, dst, opts = ""] = parts as [string, string, string?];
  const target = checkTarget(dst, "Binds");
  let readOnly = false;
  for (const o of opts.split(",").filter(Boolean)) {
    if (o === "ro") readOnly = true;
    else if (!["rw", "z", "Z", "rprivate", "private", "nocopy"].includes(o))
      throw new InvalidError(`invalid mode: ${o}`, { field: "Binds" });
  }
  if (posix.isAbsolute(src)) {
    if (/[,\\]/.test(src)) throw new InvalidError(`invalid volume specification: '${bind}'`, { field: "Binds" });
    return { type: "bind", source: posix.normalize(src), target, readOnly, createSource: true };
  }
  return { type: "volume", name: src, target, readOnly, anonymous: false };
}

function parseMounts(hc: HostConfigBody): MountSpec[] {
  const out: MountSpec[] = [];
  for (const b of hc.Binds ?? []) out.push(parseBind(b));
  for (const m of hc.Mounts ?? []) {
    const target = checkTarget(m.Target, "Mounts");
    if (m.Type === "bind") {
      if (!m.Source || !posix.isAbsolute(m.Source) || /[,:\\]/.test(m.Source))
        throw new InvalidError(`invalid mount config for type "bind": invalid source ${m.Source ?? ""}`, { field: "Mounts" });
      out.push({ type: "bind", source: posix.normalize(m.Source), target, readOnly: !!m.ReadOnly, createSource: false });
    } else if (m.Type === "volume") {
      out.push({ type: "volume", name: m.Source ?? "", target, readOnly: !!m.ReadOnly, anonymous: !m.Source });
    } else if (m.Type === "tmpfs") {
      if (m.Source) throw new InvalidError(`invalid mount config for type "tmpfs": source must not be specified`, { field: "Mounts" });
      const size = m.TmpfsOptions?.SizeBytes;
      out.push({ type: "tmpfs", target, ...(size ? { sizeBytes: nonNegative(size, "TmpfsOptions.SizeBytes") } : {}) });
    } else {
      throw new NotSupportedError(`mount type "${m.Type ?? ""}" is not supported`, { field: "Mounts" });
    }
  }
  for (const [dst, opts] of Object.entries(hc.Tmpfs ?? {})) {
    const size = /(?:^|,)size=(\d+)([kmg]?)/i.exec(opts ?? "");
    const mult = { "": 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 }[(size?.[2] ?? "").toLowerCase() as "" | "k" | "m" | "g"];
    out.push({ type: "tmpfs", target: checkTarget(dst, "Tmpfs"), ...(size ? { sizeBytes: Number(size[1]) * mult } : {}) });
  }
  const seen = new Set<string>();
  for (const m of out) {
    if (seen.has(m.target)) throw new InvalidError(`Duplicate mount point: ${m.target}`, { field: "Mounts" });
    seen.add(m.target);
  }
  return out;
}

function parseRestartPolicy(p: HostConfigBody["RestartPolicy"], autoRemove: boolean): HostConfig["RestartPolicy"] {
  const name = (p?.Name ?? "") as RestartPolicyName | "";
  if (!["", "no", "always", "unless-stopped", "on-failure"].includes(name))
    throw new InvalidError(`invalid restart policy '${name}'`, { field: "RestartPolicy" });
  const max = nonNegative(p?.MaximumRetryCount, "RestartPolicy.MaximumRetryCount");
  if (max && name !== "on-failure")
    throw new InvalidError(`invalid restart policy: maximum retry count can only be used with 'on-failure'`, { field: "RestartPolicy" });
  if (autoRemove && name && name !== "no")
    throw new InvalidError("can't create 'AutoRemove' container with restart policy", { field: "RestartPolicy" });
  return { Name: name, MaximumRetryCount: max };
}

function parseNetworkMode(mode: string | undefined): NetworkModeName {
  if (!mode || mode === "default" || mode === "bridge") return "bridge";
  if (mode === "host" || mode === "none") return mode;
  if (mode.startsWith("container:")) throw new NotSupportedError("network mode container:<id> is not supported", { field: "NetworkMode" });
  if (!/^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/.test(mode))
    throw new InvalidError(`invalid network mode ${JSON.stringify(mode)}`, { field: "NetworkMode" });
  return "user";
}

/** One network's endpoint settings, checked: aliases and a fixed IPv4 address, nothing else. */
export function parseEndpointConfig(cfg: EndpointConfigBody | null | undefined, field: string): { aliases: string[]; ipv4Address: string } {
  const aliases = stringList(cfg?.Aliases, `${field}.Aliases`) ?? [];
  for (const a of aliases)
    if (!/^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/.test(a))
      throw new InvalidError(`invalid network alias ${JSON.stringify(a)}`, { field: `${field}.Aliases` });
  if (cfg?.Links?.length)
    throw new NotSupportedError("links are not supported: containers on a user network reach each other by name", {
      field: `${field}.Links`,
    });
  if (cfg?.IPAMConfig?.IPv6Address)
    throw new NotSupportedError("IPv6 addresses are not supported", { field: `${field}.IPAMConfig.IPv6Address` });
  if (cfg?.IPAMConfig?.LinkLocalIPs?.length)
    throw new NotSupportedError("link-local addresses are not supported", { field: `${field}.IPAMConfig.LinkLocalIPs` });
  if (cfg?.MacAddress) throw new NotSupportedError("a fixed MAC address is not supported", { field: `${field}.MacAddress` });
  if (cfg?.DriverOpts && Object.keys(cfg.DriverOpts).length)
    throw new NotSupportedError("endpoint driver options are not supported", { field: `${field}.DriverOpts` });
  return { aliases: [...new Set(aliases)], ipv4Address: cfg?.IPAMConfig?.IPv4Address ?? "" };
}

/**
 * The user networks a create request asks for: HostConfig.NetworkMode first, then any other
 * entry of NetworkingConfig.EndpointsConfig. Entries for bridge/host/none must carry nothing.
 */
function parseNetworkRequests(mode: NetworkModeName, hc: HostConfigBody, body: CreateBody): ContainerSpec["networkRequests"] {
  const endpoints = body.NetworkingConfig?.EndpointsConfig ?? {};
  const out: ContainerSpec["networkRequests"] = [];
  if (mode === "user")
    out.push({ name: hc.NetworkMode!, ...parseEndpointConfig(endpoints[hc.NetworkMode!], `EndpointsConfig.${hc.NetworkMode}`) });
  for (const [name, cfg] of Object.entries(endpoints)) {
    if (name === hc.NetworkMode) continue;
    const field = `EndpointsConfig.${name}`;
    if (["bridge", "host", "none", "default"].includes(name)) {
      const e = parseEndpointConfig(cfg, field);
      if (e.aliases.length || e.ipv4Address)
        throw new InvalidError(`network-scoped aliases and fixed addresses are only supported for user-defined networks, not ${name}`, {
          field,
        });
      continue;
    }
    if (mode === "host" || mode === "none")
      throw new InvalidError(`container cannot be connected to network ${name} and to the ${mode} network`, { field });
    out.push({ name, ...parseEndpointConfig(cfg, field) });
  }
  return out;
}

/** Env lists merged: the container's entries override the image's for the same name. */
export function mergeEnv(image: readonly string[] = [], container: readonly string[] = []): string[] {
  const order: string[] = [];
  const values = new Map<string, string>();
  for (const e of [...image, ...container]) {
    const key = e.includes("=") ? e.slice(0, e.indexOf("=")) : e;
    if (!values.has(key)) order.push(key);
    values.set(key, e);
  }
  return order.map((k) => values.get(k)!);
}

/**
 * Validates `body` and applies the image's defaults (Docker's rules: an Entrypoint given in the
 * request drops the image's Cmd; Env merged by name; Labels merged, the request's winning).
 */
export function parseCreateRequest(body: CreateBody, image: ContainerDefaults): ContainerSpec {
  if (!body.Image || typeof body.Image !== "string") throw new InvalidError("config error: Image is required", { field: "Image" });
  checkBodyTypes(body as Record<string, unknown>);
  const hc = body.HostConfig ?? {};
  if (hc.Privileged) throw new NotSupportedError("privileged containers are not supported", { field: "Privileged" });
  if (hc.Devices?.length) throw new NotSupportedError("devices are not supported", { field: "Devices" });
  if (hc.LogConfig?.Type && hc.LogConfig.Type !== "json-file")
    throw new NotSupportedError(`log driver ${hc.LogConfig.Type} is not supported; only json-file`, { field: "LogConfig" });
  const logConfig = { ...(hc.LogConfig?.Config ?? {}) };
  logLimits(logConfig);
  refuseUnsupportedHostConfig(hc);
  checkSecurityOpt(hc.SecurityOpt);

  const env = stringList(body.Env, "Env") ?? [];
  for (const e of env) if (!e || e.startsWith("=")) throw new InvalidError(`invalid environment variable: ${e}`, { field: "Env" });
  const entrypointGiven = body.Entrypoint !== undefined && body.Entrypoint !== null;
  const entrypoint = entrypointGiven
    ? stringList(body.Entrypoint, "Entrypoint")!.filter((s, i, a) => !(a.length === 1 && s === ""))
    : (image.Entrypoint ?? []);
  const cmdGiven = stringList(body.Cmd, "Cmd");
  const cmd = cmdGiven ?? (entrypointGiven ? [] : (image.Cmd ?? []));
  const argv = [...entrypoint, ...cmd];
  if (!argv.length) throw new InvalidError("no command specified", { field: "Cmd" });

  const memory = nonNegative(hc.Memory, "Memory");
  if (memory && memory < MIN_MEMORY) throw new InvalidError("Minimum memory limit allowed is 6MB", { field: "Memory" });
  const memorySwap = hc.MemorySwap ?? 0;
  if (memorySwap > 0 && memorySwap !== memory)
    throw new NotSupportedError("swap is always off on this agent: MemorySwap must equal Memory", { field: "MemorySwap" });
  const nanoCpus = nonNegative(hc.NanoCpus, "NanoCpus");
  const cpuPeriod = nonNegative(hc.CpuPeriod, "CpuPeriod");
  const cpuQuota = nonNegative(hc.CpuQuota, "CpuQuota");
  if (nanoCpus && (cpuPeriod || cpuQuota))
    throw new InvalidError("Conflicting options: Nano CPUs and CPU Period cannot both be set", { field: "NanoCpus" });
  if (cpuPeriod && (cpuPeriod < 1000 || cpuPeriod > 1_000_000))
    throw new InvalidError("CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)", { field: "CpuPeriod" });
  if (cpuQuota && cpuQuota < 1000) throw new InvalidError("CPU cfs quota can not be less than 1ms (i.e. 1000)", { field: "CpuQuota" });
  const cpuShares = nonNegative(hc.CpuShares, "CpuShares");
  // A default limit, unlike Docker: a fork bomb in one container must not starve the agent and
  // the node. --pids-limit -1 asks for none.
  const pidsLimit =
    hc.PidsLimit === undefined || hc.PidsLimit === null || hc.PidsLimit === 0
      ? DEFAULT_PIDS_LIMIT
      : hc.PidsLimit < 0
        ? null
        : nonNegative(hc.PidsLimit, "PidsLimit");

  const autoRemove = !!hc.AutoRemove;
  const networkMode = parseNetworkMode(hc.NetworkMode);
  const capAdd = stringList(hc.CapAdd, "CapAdd") ?? [];
  const capDrop = stringList(hc.CapDrop, "CapDrop") ?? [];
  capabilityMask(capAdd, capDrop, networkMode);
  const names = parseNameSettings(hc, networkMode);
  const networkRequests = parseNetworkRequests(networkMode, hc, body);
  const { ports, shape } = parsePortBindings(hc.PortBindings);
  if (networkMode !== "bridge" && networkMode !== "user" && ports.length) {
    throw new InvalidError(`conflicting options: port publishing and the container type network mode`, { field: "PortBindings" });
  }
  if (hc.PublishAllPorts)
    throw new NotSupportedError("PublishAllPorts (-P) is not supported; publish ports with -p", { field: "PublishAllPorts" });
  const mounts = parseMounts(hc);
  // Anonymous volumes for the request's and the image's Volumes not already mounted.
  const volumes = { ...(image.Volumes ?? {}), ...(body.Volumes ?? {}) };
  for (const target of Object.keys(volumes)) {
    const clean = checkTarget(target, "Volumes");
    if (!mounts.some((m) => m.target === clean)) mounts.push({ type: "volume", name: "", target: clean, readOnly: false, anonymous: true });
  }

  const exposed = { ...(image.ExposedPorts ?? {}), ...(body.ExposedPorts ?? {}) };
  for (const p of ports) exposed[`${p.containerPort}/${p.protocol}`] = {};
  for (const key of Object.keys(exposed)) parseContainerPort(key);
  const stopTimeout = body.StopTimeout ?? undefined;
  const healthcheck = mergeHealthcheck(body.Healthcheck, image.Healthcheck);

  const config: ContainerConfig = {
    Hostname: body.Hostname ?? "",
    Domainname: body.Domainname ?? "",
    User: body.User || image.User || "",
    AttachStdin: !!body.AttachStdin,
    AttachStdout: !!body.AttachStdout,
    AttachStderr: !!body.AttachStderr,
    ...(Object.keys(exposed).length ? { ExposedPorts: exposed } : {}),
    Tty: !!body.Tty,
    OpenStdin: !!body.OpenStdin,
    StdinOnce: !!body.OpenStdin && !!body.StdinOnce,
    Env: mergeEnv(image.Env ?? [], env),
    Cmd: cmd.length ? cmd : null,
    Image: body.Image,
    Volumes: Object.keys(volumes).length ? volumes : null,
    WorkingDir: body.WorkingDir || image.WorkingDir || "",
    Entrypoint: entrypoint.length ? entrypoint : null,
    OnBuild: null,
    Labels: { ...(image.Labels ?? {}), ...(body.Labels ?? {}) },
    ...(body.StopSignal || image.StopSignal ? { StopSignal: body.StopSignal || image.StopSignal } : {}),
    ...(stopTimeout !== undefined ? { StopTimeout: nonNegative(stopTimeout, "StopTimeout") } : {}),
    ...(healthcheck ? { Healthcheck: healthcheck } : {}),
  };
  if (config.WorkingDir && !posix.isAbsolute(config.WorkingDir))
    throw new InvalidError(`the working directory '${config.WorkingDir}' is invalid, it needs to be an absolute path`, {
      field: "WorkingDir",
    });

  const hostConfig: HostConfig = {
    Binds: hc.Binds?.length ? hc.Binds : null,
    NetworkMode: hc.NetworkMode || "default",
    PortBindings: shape,
    RestartPolicy: parseRestartPolicy(hc.RestartPolicy, autoRemove),
    AutoRemove: autoRemove,
    ...(hc.Mounts?.length ? { Mounts: hc.Mounts } : {}),
    Memory: memory,
    MemorySwap: memory ? memory : 0,
    NanoCpus: nanoCpus,
    CpuShares: cpuShares,
    CpuPeriod: cpuPeriod,
    CpuQuota: cpuQuota,
    PidsLimit: pidsLimit,
    ReadonlyRootfs: !!hc.ReadonlyRootfs,
    ...(hc.Tmpfs && Object.keys(hc.Tmpfs).length ? { Tmpfs: hc.Tmpfs } : {}),
    Privileged: false,
    PublishAllPorts: false,
    CapAdd: capAdd.length ? capAdd : null,
    CapDrop: capDrop.length ? capDrop : null,
    Dns: names.dns,
    DnsSearch: names.dnsSearch,
    DnsOptions: names.dnsOptions,
    ExtraHosts: names.extraHosts.length ? names.extraHosts : null,
    SecurityOpt: hc.SecurityOpt?.length ? hc.SecurityOpt : null,
    LogConfig: { Type: "json-file", Config: logConfig },
  };
  return { path: argv[0]!, args: argv.slice(1), config, hostConfig, networkMode, networkRequests, ports, mounts };
}
