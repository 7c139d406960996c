/**
 * The `flotilla-shim run` command line for a container: overlay rootfs, namespaces, limits,
 * mounts, identity and command. Pure, so the mapping from Docker's HostConfig is testable.
 */
import type { ContainerRecord } from "./container-types";
import { capabilityMask, DEFAULT_CAP_MASK } from "./host-options";
import { logLimits } from "./log-options";
import type { ContainerPaths } from "./container-store";

/** A mount resolved to host paths (volumes turned into their data directories). */
export type ResolvedMount =
  { type: "bind"; source: string; target: string; readOnly: boolean } | { type: "tmpfs"; target: string; sizeBytes?: number };

export interface ShimRunInput {
  record: ContainerRecord;
  paths: ContainerPaths;
  /** Image layers, topmost first. */
  lowerDirs: readonly string[];
  hostname: string;
  /** `new`, `host` or a netns path. */
  netns: string;
  /** `UID:GID` or "" for the image default (root). */
  user: string;
  mounts: readonly ResolvedMount[];
  /** hostname, hosts and resolv.conf prepared for the container. */
  etcFiles?: { hostname: string; hosts: string; resolvConf: string };
  /** An attach is waiting for the start: the shim holds the output until it connects. */
  attachWait?: boolean;
}

/** Containers whose I/O goes through the shim's attach socket rather than the log alone. */
export function isInteractive(c: Pick<ContainerRecord, "config">): boolean {
  return c.config.Tty || c.config.OpenStdin;
}

const CFS_PERIOD = 100_000;

/** Arguments after `run`. */
export function shimRunArgs(input: ShimRunInput): string[] {
  const { record: c, paths } = input;
  const hc = c.hostConfig;
  const args = [
    "--id",
    c.id,
    "--state-dir",
    paths.stateDir,
    "--rootfs-lower",
    input.lowerDirs.join(":"),
    "--upper",
    paths.upper,
    "--work",
    paths.work,
    "--log",
    paths.log,
    "--hostname",
    input.hostname,
    "--netns",
    input.netns,
  ];
  const log = logLimits(hc.LogConfig?.Config);
  if (log.maxSize > 0) args.push("--log-max-size", String(log.maxSize), "--log-max-files", String(log.maxFiles));
  // Docker gives a tty's process TERM=xterm unless the container sets TERM.
  if (c.config.Tty && !c.config.Env.some((e) => e.startsWith("TERM="))) args.push("--env", "TERM=xterm");
  for (const e of c.config.Env) args.push("--env", e);
  if (isInteractive(c)) {
    args.push("--attach");
    if (c.config.Tty) args.push("--tty");
    if (c.config.OpenStdin) args.push("--stdin");
    if (c.config.StdinOnce) args.push("--stdin-once");
    if (input.attachWait) args.push("--attach-wait");
  }
  if (c.config.WorkingDir) args.push("--cwd", c.config.WorkingDir);
  if (input.user) args.push("--user", input.user);
  if (hc.Memory) args.push("--memory", String(hc.Memory));
  if (hc.NanoCpus) {
    args.push("--cpu-quota", String(Math.max(1000, Math.round((hc.NanoCpus * CFS_PERIOD) / 1e9))), "--cpu-period", String(CFS_PERIOD));
  } else {
    if (hc.CpuQuota) args.push("--cpu-quota", String(hc.CpuQuota));
    if (hc.CpuPeriod) args.push("--cpu-period", String(hc.CpuPeriod));
  }
  if (hc.CpuShares) args.push("--cpu-shares", String(Math.min(262144, Math.max(2, hc.CpuShares))));
  if (hc.PidsLimit) args.push("--pids", String(hc.PidsLimit));
  if (hc.ReadonlyRootfs) args.push("--readonly-rootfs");
  const caps = capabilityMask(hc.CapAdd ?? [], hc.CapDrop ?? [], c.networkMode);
  if (caps !== DEFAULT_CAP_MASK) args.push("--caps", `0x${caps.toString(16)}`);
  if (input.etcFiles) {
    // Bound before the user's mounts, so a user bind of /etc/hosts wins, as in Docker.
    const targets = new Set(input.mounts.map((m) => m.target));
    for (const [file, target] of [
      [input.etcFiles.hostname, "/etc/hostname"],
      [input.etcFiles.hosts, "/etc/hosts"],
      [input.etcFiles.resolvConf, "/etc/resolv.conf"],
    ] as const) {
      if (!targets.has(target)) args.push("--mount", `bind:${file}:${target}`);
    }
  }
  for (const m of input.mounts) {
    if (m.type === "bind") args.push("--mount", `bind:${m.source}:${m.target}${m.readOnly ? ":ro" : ""}`);
    else args.push("--mount", `tmpfs:${m.target}${m.sizeBytes ? `:${m.sizeBytes}` : ""}`);
  }
  args.push("--", c.path, ...c.args);
  return args;
}
