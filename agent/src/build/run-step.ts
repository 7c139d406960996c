/**
 * One RUN step: the command runs in a throw-away container through the shim (foreground, its
 * output streamed to the build), on an overlay of the image's layers with an upper directory of
 * its own; the upper directory then becomes the step's layer. The container is never registered
 * with the agent, and its directories are removed whatever happens: a failed step leaves no
 * container, mount (the overlay lives in the shim's mount namespace) or cgroup (the shim removes it).
 */
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import * as fs from "node:fs/promises";
import { join } from "node:path";

export interface RunStepInput {
  shimPath: string;
  /** A directory for this step's upper/work/state dirs, on the same file system as the layers. */
  workRoot: string;
  /** Image layers, topmost first (may be empty: FROM scratch). */
  lowerDirs: readonly string[];
  argv: readonly string[];
  env: readonly string[];
  workdir: string;
  /** `UID:GID` or "" for root. */
  user: string;
  /** `new` (loopback only) or `host`. */
  netns: "new" | "host";
  onOutput: (text: string) => void;
}

export interface RunStepResult {
  /** The container's ID (shown as " ---> Running in …"). */
  id: string;
  exitCode: number;
  /** The container's upper directory (valid until `cleanup`). */
  upper: string;
  cleanup: () => Promise<void>;
}

/** Top-level paths the runtime mounts over; nothing written there belongs in a layer. */
export const RUNTIME_MOUNT_POINTS: ReadonlySet<string> = new Set(["proc", "sys", "dev"]);

/** Starts the step's container; `onStart` gets its ID before the command runs. */
export async function runStep(input: RunStepInput, onStart: (id: string) => void): Promise<RunStepResult> {
  const id = randomBytes(32).toString("hex");
  const dir = join(input.workRoot, `run-${id.slice(0, 12)}`);
  const upper = join(dir, "upper");
  const work = join(dir, "work");
  const state = join(dir, "state");
  const cleanup = () => fs.rm(dir, { recursive: true, force: true });
  try {
    for (const d of [upper, work]) await fs.mkdir(d, { recursive: true, mode: 0o755 });
    let lower = [...input.lowerDirs];
    if (lower.length === 0) {
      // overlayfs needs a lower layer; an empty one stands for FROM scratch.
      lower = [join(dir, "empty")];
      await fs.mkdir(lower[0]!, { mode: 0o755 });
    }
    const args = [
      "run",
      "--foreground",
      "--id",
      id,
      "--state-dir",
      state,
      "--rootfs-lower",
      lower.join(":"),
      "--upper",
      upper,
      "--work",
      work,
      "--hostname",
      id.slice(0, 12),
      "--netns",
      input.netns,
    ];
    for (const e of input.env) args.push("--env", e);
    if (input.workdir) args.push("--cwd", input.workdir);
    if (input.user) args.push("--user", input.user);
    args.push("--", ...input.argv);
    onStart(id);
    const exitCode = await new Promise<number>((resolve, reject) => {
      const child = spawn(input.shimPath, args, { stdio: ["ignore", "pipe", "pipe"] });
      child.stdout.on("data", (b: Buffer) => input.onOutput(b.toString("utf8")));
      child.stderr.on("data", (b: Buffer) => input.onOutput(b.toString("utf8").replace(/^flotilla-shim: /gm, "")));
      child.on("error", (e) => reject(new Error(`cannot run ${input.shimPath}: ${e.message}`)));
      child.on("close", (code, signal) => resolve(code ?? (signal ? 128 + 9 : 1)));
    });
    return { id, exitCode, upper, cleanup };
  } catch (e) {
    await cleanup();
    throw e;
  }
}

/** Whether the upper directory holds any change worth a layer. */
export async function upperHasChanges(upper: string): Promise<boolean> {
  const names = await fs.readdir(upper);
  return names.some((n) => !RUNTIME_MOUNT_POINTS.has(n));
}
