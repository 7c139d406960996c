/**
 * The HostConfig options beyond resources and mounts: capabilities, DNS, extra hosts, security
 * options, log options, and the refusal of every option this agent does not implement (a
 * `--cap-drop` or `--ulimit` silently ignored would be a security surprise). Pure.
 */
import { isIP } from "node:net";
import { InvalidError, NotSupportedError } from "@flotilla/core";
import type { NetworkModeName } from "./container-types";

/** Linux capability numbers (linux/capability.h), by Docker's names without CAP_. */
const CAPABILITIES: Record<string, number> = {
  CHOWN: 0,
  DAC_OVERRIDE: 1,
  DAC_READ_SEARCH: 2,
  FOWNER: 3,
  FSETID: 4,
  KILL: 5,
  SETGID: 6,
  SETUID: 7,
  SETPCAP: 8,
  LINUX_IMMUTABLE: 9,
  NET_BIND_SERVICE: 10,
  NET_BROADCAST: 11,
  NET_ADMIN: 12,
  NET_RAW: 13,
  IPC_LOCK: 14,
  IPC_OWNER: 15,
  SYS_MODULE: 16,
  SYS_RAWIO: 17,
  SYS_CHROOT: 18,
  SYS_PTRACE: 19,
  SYS_PACCT: 20,
  SYS_ADMIN: 21,
  SYS_BOOT: 22,
  SYS_NICE: 23,
  SYS_RESOURCE: 24,
  SYS_TIME: 25,
  SYS_TTY_CONFIG: 26,
  MKNOD: 27,
  LEASE: 28,
  AUDIT_WRITE: 29,
  AUDIT_CONTROL: 30,
  SETFCAP: 31,
  MAC_OVERRIDE: 32,
  MAC_ADMIN: 33,
  SYSLOG: 34,
  WAKE_ALARM: 35,
  BLOCK_SUSPEND: 36,
  AUDIT_READ: 37,
  PERFMON: 38,
  BPF: 39,
  CHECKPOINT_RESTORE: 40,
};

/** Docker's default set; the shim's default_cap_mask() is the same (0xa80425fb). */
export const DEFAULT_CAPABILITIES = [
  "CHOWN",
  "DAC_OVERRIDE",
  "FSETID",
  "FOWNER",
  "MKNOD",
  "NET_RAW",
  "SETGID",
  "SETUID",
  "SETFCAP",
  "SETPCAP",
  "NET_BIND_SERVICE",
  "SYS_CHROOT",
  "KILL",
  "AUDIT_WRITE",
];
export const DEFAULT_CAP_MASK = DEFAULT_CAPABILITIES.reduce((m, c) => m | (1n << BigInt(CAPABILITIES[c]!)), 0n);

function capName(raw: string, field: "CapAdd" | "CapDrop"): string {
  const name = raw.toUpperCase().replace(/^CAP_/, "");
  if (name === "ALL") return name;
  if (!(name in CAPABILITIES)) throw new InvalidError(`unknown capability: "${raw}"`, { field });
  return name;
}

/**
 * The capability mask the container runs with: Docker's default set, minus --cap-drop (ALL
 * drops every one), plus --cap-add of capabilities in that default set. A host-network
 * container does not get NET_RAW (raw sockets on the host's interfaces) unless it asks.
 * Anything beyond the default set would need the privilege model this agent does not have.
 */
export function capabilityMask(capAdd: readonly string[], capDrop: readonly string[], networkMode: NetworkModeName): bigint {
  const add = capAdd.map((c) => capName(c, "CapAdd"));
  const drop = capDrop.map((c) => capName(c, "CapDrop"));
  for (const c of add) {
    if (c === "ALL" || !DEFAULT_CAPABILITIES.includes(c)) {
      throw new NotSupportedError(
        `--cap-add ${c} is not supported: only Docker's default capabilities can be added back (${DEFAULT_CAPABILITIES.join(", ")})`,
        { field: "CapAdd" },
      );
    }
  }
  let mask = drop.includes("ALL") ? 0n : DEFAULT_CAP_MASK;
  for (const c of drop) if (c !== "ALL") mask &= ~(1n << BigInt(CAPABILITIES[c]!));
  if (networkMode === "host" && !add.includes("NET_RAW")) mask &= ~(1n << BigInt(CAPABILITIES.NET_RAW!));
  for (const c of add) mask |= 1n << BigInt(CAPABILITIES[c]!);
  return mask;
}

/** The DNS and hosts settings written into the container's /etc files. */
export interface NameSettings {
  dns: string[];
  dnsSearch: string[];
  dnsOptions: string[];
  /** `name:address` as Docker's --add-host. */
  extraHosts: string[];
}

const HOSTNAME = /^[A-Za-z0-9]([A-Za-z0-9_.-]*[A-Za-z0-9])?$/;
const RESOLV_WORD = /^[^\s#;]+$/;

function list(value: unknown, field: string): string[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value) || value.some((v) => typeof v !== "string"))
    throw new InvalidError(`${field} must be a list of strings`, { field });
  return value as string[];
}

export function parseNameSettings(
  hc: { Dns?: unknown; DnsSearch?: unknown; DnsOptions?: unknown; ExtraHosts?: unknown },
  networkMode: NetworkModeName,
): NameSettings {
  const dns = list(hc.Dns, "Dns");
  for (const d of dns)
    if (!isIP(d)) throw new InvalidError(`invalid --dns ${JSON.stringify(d)}: an IP address is expected`, { field: "Dns" });
  const dnsSearch = list(hc.DnsSearch, "DnsSearch");
  for (const s of dnsSearch)
    if (s !== "." && !HOSTNAME.test(s)) throw new InvalidError(`invalid --dns-search ${JSON.stringify(s)}`, { field: "DnsSearch" });
  const dnsOptions = list(hc.DnsOptions, "DnsOptions");
  for (const o of dnsOptions)
    if (!RESOLV_WORD.test(o)) throw new InvalidError(`invalid --dns-option ${JSON.stringify(o)}`, { field: "DnsOptions" });
  const extraHosts = list(hc.ExtraHosts, "ExtraHosts");
  for (const h of extraHosts) {
    const at = h.indexOf(":");
    const [name, ip] = at > 0 ? [h.slice(0, at), h.slice(at + 1)] : ["", ""];
    if (ip === "host-gateway")
      throw new NotSupportedError(`--add-host ${h}: host-gateway is not supported by this agent; give the address`, {
        field: "ExtraHosts",
      });
    if (!HOSTNAME.test(name) || !isIP(ip.replace(/^\[(.*)\]$/, "$1")))
      throw new InvalidError(`invalid --add-host ${JSON.stringify(h)}: expected name:address`, { field: "ExtraHosts" });
  }
  if (networkMode === "host" && (dns.length || dnsSearch.length || dnsOptions.length)) {
    throw new InvalidError("conflicting options: dns and the network mode host (the container uses the host's resolver)", { field: "Dns" });
  }
  return { dns, dnsSearch, dnsOptions, extraHosts };
}

/** resolv.conf with the container's DNS settings applied over `base` (the host's, filtered). */
export function applyDns(base: string, s: Pick<NameSettings, "dns" | "dnsSearch" | "dnsOptions">): string {
  if (!s.dns.length && !s.dnsSearch.length && !s.dnsOptions.length) return base;
  const lines = base.split("\n").filter((l) => l.trim() !== "");
  const keep = (kind: string, replaced: boolean) => (l: string) => !(replaced && new RegExp(`^\\s*${kind}\\s`).test(l));
  const kept = lines
    .filter(keep("nameserver", s.dns.length > 0))
    .filter(keep("(search|domain)", s.dnsSearch.length > 0))
    .filter(keep("options", s.dnsOptions.length > 0));
  return [
    ...s.dns.map((d) => `nameserver ${d}`),
    ...kept,
    ...(s.dnsSearch.length && !(s.dnsSearch.length === 1 && s.dnsSearch[0] === ".") ? [`search ${s.dnsSearch.join(" ")}`] : []),
    ...(s.dnsOptions.length ? [`options ${s.dnsOptions.join(" ")}`] : []),
    "",
  ].join("\n");
}

/** /etc/hosts lines for --add-host. */
export function extraHostLines(extraHosts: readonly string[]): string[] {
  return extraHosts.map((h) => {
    const at = h.indexOf(":");
    return `${h.slice(at + 1).replace(/^\[(.*)\]$/, "$1")}\t${h.slice(0, at)}`;
  });
}

/** --security-opt values this agent honours: no-new-privileges is always on. */
export function checkSecurityOpt(value: unknown): void {
  for (const o of list(value, "SecurityOpt")) {
    if (/^no-new-privileges([:=]true)?$/.test(o)) continue;
    throw new NotSupportedError(
      `--security-opt ${o} is not supported by this agent (no-new-privileges is always on; seccomp, apparmor and labels cannot be changed)`,
      { field: "SecurityOpt" },
    );
  }
}

/**
 * HostConfig fields this agent does not implement, by the docker flag that sets them. Each must
 * be absent or at its zero value; otherwise the request is refused naming the flag.
 */
const UNSUPPORTED: Record<string, string> = {
  Init: "--init",
  Ulimits: "--ulimit",
  OomScoreAdj: "--oom-score-adj",
  OomKillDisable: "--oom-kill-disable",
  ShmSize: "--shm-size",
  IpcMode: "--ipc",
  PidMode: "--pid",
  UTSMode: "--uts",
  UsernsMode: "--userns",
  CgroupnsMode: "--cgroupns",
  Cgroup: "--cgroup",
  CgroupParent: "--cgroup-parent",
  GroupAdd: "--group-add",
  Links: "--link",
  VolumesFrom: "--volumes-from",
  VolumeDriver: "--volume-driver",
  Isolation: "--isolation",
  BlkioWeight: "--blkio-weight",
  BlkioWeightDevice: "--blkio-weight-device",
  BlkioDeviceReadBps: "--device-read-bps",
  BlkioDeviceWriteBps: "--device-write-bps",
  BlkioDeviceReadIOps: "--device-read-iops",
  BlkioDeviceWriteIOps: "--device-write-iops",
  CpuRealtimePeriod: "--cpu-rt-period",
  CpuRealtimeRuntime: "--cpu-rt-runtime",
  CpusetCpus: "--cpuset-cpus",
  CpusetMems: "--cpuset-mems",
  DeviceCgroupRules: "--device-cgroup-rule",
  DeviceRequests: "--gpus",
  MemoryReservation: "--memory-reservation",
  KernelMemory: "--kernel-memory",
  CpuCount: "--cpu-count",
  CpuPercent: "--cpu-percent",
  IOMaximumIOps: "--io-maxiops",
  IOMaximumBandwidth: "--io-maxbandwidth",
  MaskedPaths: "MaskedPaths",
  ReadonlyPaths: "ReadonlyPaths",
  Sysctls: "--sysctl",
  StorageOpt: "--storage-opt",
  Runtime: "--runtime",
};

function isZero(key: string, v: unknown): boolean {
  if (v === undefined || v === null || v === "" || v === 0 || v === false) return true;
  if (Array.isArray(v)) return v.length === 0;
  if (typeof v === "object") return Object.keys(v).length === 0;
  return key === "MemorySwappiness" && v === -1;
}

export function refuseUnsupportedHostConfig(hc: Record<string, unknown>): void {
  for (const [key, flag] of Object.entries(UNSUPPORTED)) {
    if (!isZero(key, hc[key])) throw new NotSupportedError(`${flag} is not supported by this agent (HostConfig.${key})`, { field: key });
  }
  const swappiness = hc.MemorySwappiness;
  if (!isZero("MemorySwappiness", swappiness))
    throw new NotSupportedError("--memory-swappiness is not supported by this agent (swap is always off)", { field: "MemorySwappiness" });
}

const STRING_FIELDS = ["Hostname", "Domainname", "User", "WorkingDir", "StopSignal"] as const;
const OBJECT_FIELDS = ["Labels", "ExposedPorts", "Volumes", "HostConfig"] as const;

/**
 * The shape of a create body before anything reads it: a field of the wrong JSON type is a 400
 * naming it, never a crash deeper down (found by `npm run fuzz`).
 */
export function checkBodyTypes(body: Record<string, unknown>): void {
  if (typeof body !== "object" || body === null || Array.isArray(body))
    throw new InvalidError("the request body must be a JSON object", { field: "body" });
  for (const f of STRING_FIELDS) {
    if (body[f] !== undefined && body[f] !== null && typeof body[f] !== "string")
      throw new InvalidError(`${f} must be a string`, { field: f });
  }
  for (const f of OBJECT_FIELDS) {
    const v = body[f];
    if (v !== undefined && v !== null && (typeof v !== "object" || Array.isArray(v)))
      throw new InvalidError(`${f} must be an object`, { field: f });
  }
  for (const [k, v] of Object.entries((body.Labels as Record<string, unknown> | null) ?? {})) {
    if (typeof v !== "string") throw new InvalidError(`label ${k} must be a string`, { field: "Labels" });
  }
  const hc = (body.HostConfig ?? {}) as Record<string, unknown>;
  for (const f of ["LogConfig", "RestartPolicy", "PortBindings", "Tmpfs"]) {
    const v = hc[f];
    if (v !== undefined && v !== null && (typeof v !== "object" || Array.isArray(v)))
      throw new InvalidError(`HostConfig.${f} must be an object`, { field: f });
  }
  for (const f of ["Binds", "Mounts", "CapAdd", "CapDrop", "Dns", "DnsSearch", "DnsOptions", "ExtraHosts", "SecurityOpt"]) {
    const v = hc[f];
    if (v !== undefined && v !== null && !Array.isArray(v)) throw new InvalidError(`HostConfig.${f} must be a list`, { field: f });
  }
}
