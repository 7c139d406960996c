/**
 * Talks to flotilla-shim (agent/shim/README.md): starts a container with `run` (detached: the
 * call returns once the command is exec'd), signals it through its control FIFO, reads its
 * state.json. The shim outlives the agent; everything here works on a shim we did not start.
 */
import { spawn } from "node:child_process";
import * as fs from "node:fs";
import { constants as osConstants } from "node:os";
import { join } from "node:path";
import { InvalidError } from "@flotilla/core";

/** The shim's state.json. */
export interface ShimState {
  id: string;
  shimPid: number;
  pid: number;
  status: "created" | "running" | "exited";
  exitCode: number | null;
  oomKilled: boolean;
  startedAt: string | null;
  finishedAt: string | null;
  error: string | null;
  cgroupVersion: 1 | 2 | null;
  cgroup: string | null;
}

/** `run` failed: 125 the shim could not set the container up, 126 not executable, 127 not found. */
export class ShimRunError extends Error {
  constructor(
    readonly exitCode: number,
    message: string,
  ) {
    super(message);
    this.name = "ShimRunError";
  }
}

/** `TERM`, `SIGTERM`, `15` → 15. InvalidError for anything else. */
export function signalNumber(signal: string | number): number {
  if (typeof signal === "number" || /^\d+$/.test(signal)) {
    const n = Number(signal);
    if (n >= 1 && n <= 64) return n;
  } else {
    const name = signal.toUpperCase();
    const n = (osConstants.signals as Record<string, number>)[name.startsWith("SIG") ? name : `SIG${name}`];
    if (n) return n;
  }
  throw new InvalidError(`Invalid signal: ${signal}`, { field: "signal" });
}

/**
 * Runs `flotilla-shim run ARGS` (or `exec`) and resolves with the state it prints once the command runs.
 * The shim detaches its monitor, so this process ends right after the start is reported.
 */
export function shimRun(shimPath: string, args: readonly string[], command: "run" | "exec" = "run"): Promise<ShimState> {
  return new Promise((resolve, reject) => {
    const child = spawn(shimPath, [command, ...args], { stdio: ["ignore", "pipe", "pipe"] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on("data", (b: Buffer) => out.push(b));
    child.stderr.on("data", (b: Buffer) => err.push(b));
    child.on("error", (e) => reject(new ShimRunError(125, `cannot run ${shimPath}: ${e.message}`)));
    child.on("close", (code, signal) => {
      const stderr = Buffer.concat(err).toString("utf8").trim();
      if (code === 0) {
        try {
          resolve(JSON.parse(Buffer.concat(out).toString("utf8")) as ShimState);
        } catch {
          reject(new ShimRunError(125, `flotilla-shim printed no state: ${stderr}`));
        }
        return;
      }
      const message = stderr.replace(/^flotilla-shim: /gm, "") || `flotilla-shim exited with ${code ?? signal}`;
      reject(new ShimRunError(code ?? 125, message));
    });
  });
}

/**
 * Asks the shim to signal the container init (what `flotilla-shim kill` does: the signal number
 * and a newline into the control FIFO). False when no shim listens any more.
 */
export function shimSignal(stateDir: string, signal: number): boolean {
  let fd: number;
  try {
    fd = fs.openSync(join(stateDir, "control"), fs.constants.O_WRONLY | fs.constants.O_NONBLOCK);
  } catch {
    return false; // ENXIO: no reader, ENOENT: cleaned up — either way the shim is gone
  }
  try {
    fs.writeSync(fd, `${signal}\n`);
    return true;
  } catch {
    return false;
  } finally {
    fs.closeSync(fd);
  }
}

/** True while a shim monitor holds the control FIFO open for reading. */
export function shimAlive(stateDir: string): boolean {
  try {
    const fd = fs.openSync(join(stateDir, "control"), fs.constants.O_WRONLY | fs.constants.O_NONBLOCK);
    fs.closeSync(fd);
    return true;
  } catch {
    return false;
  }
}

export function readShimState(stateDir: string): ShimState | null {
  try {
    return JSON.parse(fs.readFileSync(join(stateDir, "state.json"), "utf8")) as ShimState;
  } catch {
    return null; // not written yet, or replaced between our open and read (rename is atomic)
  }
}
