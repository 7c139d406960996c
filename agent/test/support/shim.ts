// Helpers to drive the native shim (agent/shim) from tests and benchmarks: build it, give each
// container its own directories, run it, read its state and log files, and list what a container
// could have left behind on the host (mounts, cgroups, processes, network namespaces).
import { execFileSync, spawnSync, type SpawnSyncReturns } from "node:child_process";
import * as fs from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export const SHIM_DIR = join(__dirname, "..", "..", "shim");
export const SHIM_BIN = process.env.FLOTILLA_SHIM_BIN ?? join(SHIM_DIR, "build", "flotilla-shim");

/** The shim's state.json (see agent/shim/README.md). */
export interface ShimState {
  readonly id: string;
  readonly shimPid: number;
  readonly pid: number;
  readonly status: "created" | "running" | "exited";
  readonly exitCode: number | null;
  readonly oomKilled: boolean;
  readonly startedAt: string | null;
  readonly finishedAt: string | null;
  readonly error: string | null;
  readonly cgroupVersion: 1 | 2 | null;
  readonly cgroup: string | null;
}

/** One line of a container log (docker json-file format). */
export interface LogRecord {
  readonly log: string;
  readonly stream: "stdout" | "stderr";
  readonly time: string;
}

/**
 * Builds the shim with its Makefile (a no-op when up to date) and returns the binary path. Under
 * a lock: the shim-*.int.spec.ts files run in parallel workers, and two makes relinking the
 * binary at once could hand a test a half-written file.
 */
export function buildShim(): string {
  if (!process.env.FLOTILLA_SHIM_BIN) {
    execFileSync("flock", [join(tmpdir(), "flotilla-shim-make.lock"), "make", "-C", SHIM_DIR, "-s"], { stdio: "inherit" });
  }
  return SHIM_BIN;
}

/** Per-container directories: state, overlay upper/work, log file. */
export interface Box {
  readonly id: string;
  readonly dir: string;
  readonly stateDir: string;
  readonly upper: string;
  readonly work: string;
  readonly log: string;
}

let boxes = 0;

/** Makes the directories of one container under root; ids are unique per process. */
export function newBox(root: string, name: string): Box {
  const id = `${name}-${process.pid}-${++boxes}`;
  const dir = join(root, id);
  const box = { id, dir, stateDir: join(dir, "state"), upper: join(dir, "upper"), work: join(dir, "work"), log: join(dir, "log.json") };
  for (const d of [box.upper, box.work]) fs.mkdirSync(d, { recursive: true });
  return box;
}

/** The run arguments common to every test: id, state dir, overlay over lower, log file. */
export function boxArgs(box: Box, lower: string): string[] {
  return ["--id", box.id, "--state-dir", box.stateDir, "--rootfs-lower", lower, "--upper", box.upper, "--work", box.work, "--log", box.log];
}

/** Runs the shim synchronously (`run` returns once the container started, or after it exited with --foreground). */
export function shim(args: readonly string[], timeoutMs = 30_000): SpawnSyncReturns<string> {
  return spawnSync(SHIM_BIN, args, { encoding: "utf8", timeout: timeoutMs });
}

export function readState(stateDir: string): ShimState {
  return JSON.parse(fs.readFileSync(join(stateDir, "state.json"), "utf8")) as ShimState;
}

/** Polls state.json until pred holds; throws with the last state on timeout. */
export async function waitForState(stateDir: string, pred: (s: ShimState) => boolean, timeoutMs = 15_000): Promise<ShimState> {
  const deadline = Date.now() + timeoutMs;
  let last: ShimState | undefined;
  for (;;) {
    try {
      last = readState(stateDir);
      if (pred(last)) return last;
    } catch {
      // not written yet
    }
    if (Date.now() > deadline) throw new Error(`state of ${stateDir} did not reach the expected condition; last: ${JSON.stringify(last)}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

export const waitForExit = (stateDir: string, timeoutMs?: number) => waitForState(stateDir, (s) => s.status === "exited", timeoutMs);

export function readLog(path: string): LogRecord[] {
  if (!fs.existsSync(path)) return [];
  return fs
    .readFileSync(path, "utf8")
    .split("\n")
    .filter(Boolean)
    .map((l) => JSON.parse(l) as LogRecord);
}

/** stdout (or stderr) of a log, concatenated. */
export const logText = (path: string, stream: LogRecord["stream"] = "stdout") =>
  readLog(path)
    .filter((r) => r.stream === stream)
    .map((r) => r.log)
    .join("");

export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  // a zombie still answers kill(0): only a process that has not exited counts
  try {
    return !/^\d+ \(.*\) Z /.test(fs.readFileSync(`/proc/${pid}/stat`, "utf8"));
  } catch {
    return false;
  }
}

/** The inode of a process's network namespace, e.g. "net:[4026532290]". */
export const netnsOf = (pid: number | "self") => fs.readlinkSync(`/proc/${pid}/ns/net`);

/** Pids of every process whose network namespace is ns. */
export function processesInNetns(ns: string): number[] {
  const pids: number[] = [];
  for (const entry of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (fs.readlinkSync(`/proc/${entry}/ns/net`) === ns) pids.push(Number(entry));
    } catch {
      // exited meanwhile, or a kernel thread
    }
  }
  return pids;
}

/** Host cgroup directories of a container (whether or not they exist). */
export function cgroupDirs(id: string, parent = "flotilla", root = "/sys/fs/cgroup"): string[] {
  const v2 = fs.existsSync(join(root, "cgroup.controllers"));
  if (v2) return [join(root, parent, id)];
  return ["memory", "cpu", "cpuacct", "pids", "freezer", "blkio"].map((c) => join(root, c, parent, id));
}

/** Anything the container left on the host: mounts naming its directory, cgroup dirs, a control FIFO. */
export function leftovers(box: Box, opts: { parent?: string; cgroupRoot?: string } = {}): string[] {
  const found: string[] = [];
  for (const line of fs.readFileSync("/proc/self/mountinfo", "utf8").split("\n")) {
    if (line.includes(box.dir) || line.includes(box.id)) found.push(`mount: ${line}`);
  }
  for (const d of cgroupDirs(box.id, opts.parent, opts.cgroupRoot)) if (fs.existsSync(d)) found.push(`cgroup: ${d}`);
  if (fs.existsSync(join(box.stateDir, "control"))) found.push("control fifo");
  if (fs.existsSync(join(box.stateDir, "rootfs"))) found.push("rootfs mount point");
  return found;
}

/** The session id of a process. */
export function sessionOf(pid: number): number {
  // /proc/PID/stat: pid (comm) state ppid pgrp session ...
  const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
  return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[3]);
}
