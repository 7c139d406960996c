/**
 * docker rename, docker update (memory, CPUs, pids, restart policy; applied to the cgroup of a
 * running container at once), and docker diff (the container's overlay upper layer against its
 * image). The request checks and the diff classification are pure.
 */
import * as fs from "node:fs";
import { join } from "node:path";
import { ConflictError, InvalidError, NotSupportedError } from "@flotilla/core";
import { cgroupDir, cgroupOf, type CgroupRef } from "./cgroup-files";
import type { ContainerService } from "./container-service";
import type { ContainerRecord, HostConfig } from "./container-types";
import { validateName } from "./create-request";
import { readShimState } from "./shim-client";

const CFS_PERIOD = 100_000;
const MIN_MEMORY = 6 * 1024 * 1024;

/** The fields of POST /containers/{id}/update we apply; any other non-zero field is refused by name. */
export interface UpdateBody {
  Memory?: number;
  MemorySwap?: number;
  NanoCpus?: number;
  CpuShares?: number;
  CpuPeriod?: number;
  CpuQuota?: number;
  PidsLimit?: number | null;
  RestartPolicy?: { Name?: string; MaximumRetryCount?: number } | null;
  [other: string]: unknown;
}

const APPLIED = new Set(["Memory", "MemorySwap", "NanoCpus", "CpuShares", "CpuPeriod", "CpuQuota", "PidsLimit", "RestartPolicy"]);

/** The new HostConfig after an update (pure); InvalidError/NotSupportedError with the field. */
export function planUpdate(hc: HostConfig, body: UpdateBody, autoRemove: boolean): HostConfig {
  for (const [k, v] of Object.entries(body)) {
    if (
      APPLIED.has(k) ||
      v === undefined ||
      v === null ||
      v === 0 ||
      v === "" ||
      v === false ||
      (Array.isArray(v) && !v.length) ||
      (typeof v === "object" && !Array.isArray(v) && !Object.keys(v as object).length)
    )
      continue;
    throw new NotSupportedError(`docker update: ${k} is not supported by this agent`, { field: k });
  }
  const next: HostConfig = { ...hc, RestartPolicy: { ...hc.RestartPolicy } };
  const int = (v: unknown, name: string) => {
    if (typeof v !== "number" || !Number.isInteger(v) || v < 0) throw new InvalidError(`invalid ${name}: ${String(v)}`, { field: name });
    return v;
  };
  if (body.Memory) {
    const m = int(body.Memory, "Memory");
    if (m < MIN_MEMORY) throw new InvalidError("Minimum memory limit allowed is 6MB", { field: "Memory" });
    next.Memory = m;
    next.MemorySwap = m;
  }
  if (body.MemorySwap && body.MemorySwap !== next.Memory)
    throw new NotSupportedError("swap is always off on this agent: MemorySwap must equal Memory", { field: "MemorySwap" });
  if (body.NanoCpus) {
    next.NanoCpus = int(body.NanoCpus, "NanoCpus");
    next.CpuQuota = 0;
    next.CpuPeriod = 0;
  }
  if (body.CpuQuota) next.CpuQuota = int(body.CpuQuota, "CpuQuota");
  if (body.CpuPeriod) next.CpuPeriod = int(body.CpuPeriod, "CpuPeriod");
  if ((body.CpuQuota || body.CpuPeriod) && next.NanoCpus)
    throw new InvalidError("Conflicting options: Nano CPUs and CPU Period cannot both be set", { field: "NanoCpus" });
  if (body.CpuShares) next.CpuShares = int(body.CpuShares, "CpuShares");
  if (body.PidsLimit !== undefined && body.PidsLimit !== null && body.PidsLimit !== 0)
    next.PidsLimit = body.PidsLimit < 0 ? null : int(body.PidsLimit, "PidsLimit");
  if (body.RestartPolicy?.Name) {
    const name = body.RestartPolicy.Name;
    if (!["no", "always", "unless-stopped", "on-failure"].includes(name))
      throw new InvalidError(`invalid restart policy '${name}'`, { field: "RestartPolicy" });
    if (autoRemove && name !== "no")
      throw new InvalidError("Restart policy cannot be updated because AutoRemove is enabled for the container", {
        field: "RestartPolicy",
      });
    next.RestartPolicy = {
      Name: name as HostConfig["RestartPolicy"]["Name"],
      MaximumRetryCount: body.RestartPolicy.MaximumRetryCount ?? 0,
    };
  }
  return next;
}

function write(cg: CgroupRef, ctrl: string, file: string, value: string): void {
  fs.writeFileSync(join(cgroupDir(cg, ctrl), file), value);
}

/** Writes the limits of `hc` into a running container's group. */
export function applyLimits(cg: CgroupRef, hc: HostConfig): void {
  const quota = hc.NanoCpus ? Math.max(1000, Math.round((hc.NanoCpus * CFS_PERIOD) / 1e9)) : hc.CpuQuota || -1;
  const period = hc.NanoCpus ? CFS_PERIOD : hc.CpuPeriod || CFS_PERIOD;
  if (cg.version === 2) {
    if (hc.Memory) write(cg, "unified", "memory.max", String(hc.Memory));
    write(cg, "unified", "cpu.max", `${quota < 0 ? "max" : quota} ${period}`);
    if (hc.CpuShares) write(cg, "unified", "cpu.weight", String(1 + Math.floor(((hc.CpuShares - 2) * 9999) / 262142)));
    write(cg, "unified", "pids.max", hc.PidsLimit ? String(hc.PidsLimit) : "max");
    return;
  }
  if (hc.Memory) {
    // memory.limit must stay <= memsw.limit at every step: the order depends on the direction
    try {
      write(cg, "memory", "memory.limit_in_bytes", String(hc.Memory));
      write(cg, "memory", "memory.memsw.limit_in_bytes", String(hc.Memory));
    } catch {
      write(cg, "memory", "memory.memsw.limit_in_bytes", String(hc.Memory));
      write(cg, "memory", "memory.limit_in_bytes", String(hc.Memory));
    }
  }
  write(cg, "cpu", "cpu.cfs_period_us", String(period));
  write(cg, "cpu", "cpu.cfs_quota_us", String(quota));
  if (hc.CpuShares) write(cg, "cpu", "cpu.shares", String(hc.CpuShares));
  write(cg, "pids", "pids.max", hc.PidsLimit ? String(hc.PidsLimit) : "max");
}

/** POST /containers/{id}/update. */
export async function updateContainer(containers: ContainerService, ref: string, body: UpdateBody): Promise<void> {
  const c = containers.get(ref);
  if (c.state.status === "removing" || c.state.status === "dead")
    throw new ConflictError(`Cannot update container ${c.id}: container is marked for removal`);
  const next = planUpdate(c.hostConfig, body, c.hostConfig.AutoRemove);
  const cg = c.state.status === "running" ? cgroupOf(readShimState(containers.store.paths(c.id).stateDir)) : null;
  if (cg) {
    try {
      applyLimits(cg, next);
    } catch (err) {
      throw new InvalidError(`Cannot update container ${c.id}: ${(err as Error).message}`);
    }
  }
  c.hostConfig = next;
  await containers.store.save(c);
}

/** POST /containers/{id}/rename. */
export async function renameContainer(
  containers: ContainerService,
  ref: string,
  newName: string,
): Promise<{ c: ContainerRecord; oldName: string }> {
  if (!newName) throw new InvalidError("Neither old nor new names may be empty", { field: "name" });
  const c = containers.get(ref);
  const name = validateName(newName);
  const oldName = c.name;
  if (name === oldName) throw new InvalidError(`Renaming a container with the same name as its current name`, { field: "name" });
  containers.store.claimName(name, c.id);
  c.name = name;
  containers.store.releaseName(oldName, c.id);
  await containers.store.save(c);
  return { c, oldName };
}

export interface Change {
  Path: string;
  Kind: 0 | 1 | 2;
}

/** GET /containers/{id}/changes: what the upper layer holds, against the image's layers. */
export function diffUpper(upper: string, lowers: readonly string[]): Change[] {
  const out: Change[] = [];
  const inLower = (rel: string) => lowers.some((l) => fs.existsSync(join(l, rel)) || isLink(join(l, rel)));
  const walk = (rel: string) => {
    let entries: fs.Dirent[];
    try {
      entries = fs.readdirSync(join(upper, rel), { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      const path = `${rel}/${e.name}`;
      const full = join(upper, path);
      if (e.isCharacterDevice() && fs.statSync(full).rdev === 0) {
        out.push({ Path: path, Kind: 2 }); // an overlay whiteout: deleted
        continue;
      }
      out.push({ Path: path, Kind: inLower(path) ? 0 : 1 });
      if (e.isDirectory()) walk(path);
    }
  };
  walk("");
  return out.sort((a, b) => a.Path.localeCompare(b.Path));
}

function isLink(p: string): boolean {
  try {
    fs.lstatSync(p);
    return true;
  } catch {
    return false;
  }
}
