/**
 * The agent's state files: JSON written whole and atomically (a temp file beside the target,
 * fsync, rename), so a crash or a kill -9 leaves the old file or the new one, never half of one,
 * and read back with a version check, so a newer agent's format is refused rather than misread.
 */
import * as fs from "node:fs/promises";
import { dirname } from "node:path";

/** Replaces `path` with `value` as JSON, creating its directory (0700) when needed. */
export async function writeJsonDurably(path: string, value: unknown): Promise<void> {
  await fs.mkdir(dirname(path), { recursive: true, mode: 0o700 });
  const tmp = `${path}.${process.pid}.tmp`;
  const fh = await fs.open(tmp, "w", 0o600);
  try {
    await fh.writeFile(JSON.stringify(value, null, 2) + "\n");
    await fh.sync();
  } finally {
    await fh.close();
  }
  await fs.rename(tmp, path);
}

/** The version-1 state at `path`, or undefined when there is none yet. */
export async function readVersionedJson<T extends { version: number }>(path: string): Promise<T | undefined> {
  let text: string;
  try {
    text = await fs.readFile(path, "utf8");
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw e;
  }
  const state = JSON.parse(text) as T;
  if (state.version !== 1) throw new Error(`state: ${path}: unknown version ${String(state.version)}`);
  return state;
}
