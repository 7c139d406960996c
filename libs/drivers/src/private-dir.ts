// Directories and files root writes on a host that other users share. A directory in a
// world-writable place (/tmp) can be made in advance by anyone, and a plain write follows a
// symlink they planted: both let an ordinary user point root's writes at any file.
import { randomBytes } from "node:crypto";
import { constants } from "node:fs";
import { lstat, mkdir, open, readFile, rename, unlink } from "node:fs/promises";
import { homedir } from "node:os";
import { join } from "node:path";
import { UnavailableError } from "@flotilla/core";

/** Host-wide lock files: /run/flotilla-control/locks for root (apart from /run/flotilla, an agent's run dir when this host is also a machine), else under the user's runtime or state dir. */
export function defaultLockDir(env: NodeJS.ProcessEnv = process.env): string {
  if (process.getuid?.() === 0) return "/run/flotilla-control/locks";
  if (env.XDG_RUNTIME_DIR) return join(env.XDG_RUNTIME_DIR, "flotilla", "locks");
  return join(env.XDG_STATE_HOME || join(env.HOME || homedir(), ".local", "state"), "flotilla", "locks");
}

/**
 * Makes `dir` (0700) if missing and refuses it unless it is a real directory owned by this
 * process's user that no one else can write to, so nobody else can plant or swap files in it.
 */
export async function ensurePrivateDir(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const st = await lstat(dir);
  const uid = process.getuid?.();
  if (!st.isDirectory())
    throw new UnavailableError(`${dir} is not a directory (a symlink?): refusing to keep private files there`, { step: "lock" });
  if (uid !== undefined && st.uid !== uid) {
    throw new UnavailableError(
      `${dir} belongs to uid ${st.uid}, not to this user (uid ${uid}): refusing to keep private files there; remove it`,
      { step: "lock" },
    );
  }
  if (st.mode & 0o022) {
    throw new UnavailableError(
      `${dir} is writable by other users (mode ${(st.mode & 0o7777).toString(8)}): refusing to keep private files there`,
      { step: "lock" },
    );
  }
}

/** Reads a file without following a symlink at its last component (ELOOP if it is one). */
export function readFileNoFollow(path: string): Promise<string> {
  return readFile(path, { encoding: "utf8", flag: constants.O_RDONLY | constants.O_NOFOLLOW });
}

/**
 * Replaces `path` atomically: a new file opened with O_EXCL|O_NOFOLLOW, then renamed over it.
 * A symlink at `path` is replaced, never written through.
 */
export async function writeFileNoFollow(path: string, data: string, mode = 0o600): Promise<void> {
  const tmp = `${path}.${randomBytes(6).toString("hex")}.tmp`;
  const fh = await open(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, mode);
  try {
    await fh.writeFile(data);
  } finally {
    await fh.close();
  }
  try {
    await rename(tmp, path);
  } catch (e) {
    await unlink(tmp).catch(() => undefined);
    throw e;
  }
}
