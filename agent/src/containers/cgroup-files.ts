/**
 * The files of a running container's cgroup, found from its shim's state.json (version and the
 * group's path relative to each hierarchy root), for top, stats and pause. Reads only; the shim
 * makes and removes the groups.
 */
import * as fs from "node:fs";
import { join } from "node:path";
import type { ShimState } from "./shim-client";

export const CGROUP_ROOT = "/sys/fs/cgroup";

export interface CgroupRef {
  version: 1 | 2;
  rel: string;
  root: string;
}

/** The group of a shim state, or null before it exists. */
export function cgroupOf(s: ShimState | null, root = CGROUP_ROOT): CgroupRef | null {
  if (!s || !s.cgroup || !s.cgroupVersion) return null;
  return { version: s.cgroupVersion, rel: s.cgroup, root };
}

/** The directory holding `controller`'s files: v1 the controller's hierarchy, v2 the one group. */
export function cgroupDir(cg: CgroupRef, controller: string): string {
  return cg.version === 2 ? join(cg.root, cg.rel) : join(cg.root, controller, cg.rel);
}

/** A file's content, or null when it does not exist (a controller the kernel lacks, a removed group). */
export function readCgroupFile(cg: CgroupRef, controller: string, file: string): string | null {
  try {
    return fs.readFileSync(join(cgroupDir(cg, controller), file), "utf8");
  } catch {
    return null;
  }
}

/** A number file (`max` and absent are null). */
export function readCgroupNumber(cg: CgroupRef, controller: string, file: string): number | null {
  const t = readCgroupFile(cg, controller, file)?.trim();
  if (!t || t === "max") return null;
  const n = Number(t.split(/\s+/)[0]);
  return Number.isFinite(n) ? n : null;
}

/** `key value` lines (memory.stat, cpu.stat) → a record. Pure. */
export function parseFlatKeyed(text: string | null): Record<string, number> {
  const out: Record<string, number> = {};
  for (const line of (text ?? "").split("\n")) {
    const [k, v] = line.trim().split(/\s+/);
    if (k && v !== undefined && /^-?\d+$/.test(v)) out[k] = Number(v);
  }
  return out;
}

/** The pids in the container's group (exec'd processes included). */
export function cgroupPids(cg: CgroupRef): number[] {
  const text = readCgroupFile(cg, "pids", "cgroup.procs") ?? readCgroupFile(cg, "memory", "cgroup.procs") ?? "";
  return text.split("\n").filter(Boolean).map(Number);
}
