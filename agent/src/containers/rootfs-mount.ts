/**
 * A container's root file system mounted for the agent's own use (docker export, docker cp with
 * a stopped container), outside any running container. The overlay is mounted by a helper
 * process in a mount namespace of its own (`unshare --mount`), never in the agent's: the mount
 * exists only as long as the helper, which lives until the agent closes its stdin — or dies, so
 * a crashed agent leaves no mount behind either. The agent reaches the mount through
 * `/proc/<helper>/root`, the helper's view of the file system.
 */
import { spawn } from "node:child_process";
import { once } from "node:events";
import * as fs from "node:fs";
import { dirname, basename } from "node:path";
import { HttpError } from "../engine-errors";

export interface RootfsLayers {
  /** The image's layers, topmost first. */
  lowerDirs: readonly string[];
  upper: string;
  work: string;
}

export interface MountedRootfs {
  /** The mounted root as the agent can open it. */
  path: string;
  /** Unmounts (the helper exits and its namespace goes); waits for that. */
  release(): Promise<void>;
}

/**
 * The overlay's options. The layers share one parent: mounted from there, each lowerdir is its
 * 64-character name rather than a full path, so the options fit in a page for ~60 layers.
 * `writable`: the container's upper and work dirs as the shim mounts them; otherwise read-only,
 * the upper dir as the topmost lower layer (the work dir stays free for a start meanwhile).
 */
export function overlayOptions(l: RootfsLayers, writable: boolean): { cwd: string; options: string } {
  const parents = new Set(l.lowerDirs.map((d) => dirname(d)));
  const cwd = parents.size === 1 ? [...parents][0]! : "/";
  const lowers = l.lowerDirs.map((d) => (parents.size === 1 ? basename(d) : d));
  if (writable) return { cwd, options: `lowerdir=${lowers.join(":")},upperdir=${l.upper},workdir=${l.work},index=off` };
  return { cwd, options: `lowerdir=${[l.upper, ...lowers].join(":")},index=off,ro` };
}

/** Mounts the rootfs at `mountpoint` (an empty directory of the agent's) in a helper's namespace. */
export async function mountRootfs(l: RootfsLayers, mountpoint: string, writable: boolean): Promise<MountedRootfs> {
  const { cwd, options } = overlayOptions(l, writable);
  fs.mkdirSync(mountpoint, { recursive: true, mode: 0o700 });
  // `cat` holds the namespace until its stdin closes; propagation private keeps the mount
  // from ever reaching the agent's namespace.
  const helper = spawn(
    "unshare",
    [
      "--mount",
      "--propagation",
      "private",
      "--",
      "sh",
      "-c",
      'mount -t overlay overlay -o "$1" "$2" && echo ready && exec cat >/dev/null',
      "sh",
      options,
      mountpoint,
    ],
    { cwd, stdio: ["pipe", "pipe", "pipe"] },
  );
  let stderr = "";
  helper.stderr.on("data", (b: Buffer) => (stderr += b.toString()));
  const exited = once(helper, "close");
  const ready = await new Promise<boolean>((resolve) => {
    helper.stdout.once("data", () => resolve(true));
    helper.once("close", () => resolve(false));
    helper.once("error", () => resolve(false));
  });
  if (!ready) {
    throw new HttpError(500, `mounting the container's file system: ${stderr.trim() || "the mount helper failed"}`);
  }
  let released: Promise<void> | null = null;
  return {
    path: `/proc/${helper.pid}/root${mountpoint}`,
    release: () => (released ??= (helper.stdin.end(), exited.then(() => undefined))),
  };
}
