/**
 * Read-only view of an image's root file system through its unpacked layers, as overlayfs would
 * merge them (whiteouts hide, opaque directories hide everything below in lower layers), without
 * mounting anything. Symlinks resolve inside the view's root, never on the host: a link to
 * `../../etc/passwd` means the view's /etc/passwd. The build context is a view of one layer.
 */
import { execFile } from "node:child_process";
import type { Stats } from "node:fs";
import * as fs from "node:fs/promises";
import { posix } from "node:path";
import { join } from "node:path";
import { promisify } from "node:util";

export interface FsNode {
  /** Relative path in the view ("" for the root). */
  rel: string;
  /** The host file that holds it (in the topmost layer that has it). */
  abs: string;
  stat: Stats;
}

const MAX_LINKS = 255;

async function lstatOrNull(path: string): Promise<Stats | null> {
  try {
    return await fs.lstat(path);
  } catch {
    return null;
  }
}

const isWhiteout = (st: Stats) => st.isCharacterDevice() && st.rdev === 0;

const run = promisify(execFile);
/** Layers never change once unpacked, so what is opaque in each is learnt once per process. */
const opaqueCache = new Map<string, Promise<Set<string>>>();

/** Relative paths of the opaque directories of one unpacked layer (one getfattr run). */
export function opaqueDirs(layer: string): Promise<Set<string>> {
  let known = opaqueCache.get(layer);
  if (!known) {
    known = (async () => {
      const dump = await run("getfattr", ["-R", "-P", "-n", "trusted.overlay.opaque", "-e", "text", "."], {
        cwd: layer,
        maxBuffer: 16 << 20,
      }).then(
        (r) => r.stdout,
        (e: { stdout?: string }) => e.stdout ?? "",
      );
      const dirs = new Set<string>();
      let file: string | null = null;
      for (const line of dump.split("\n")) {
        if (line.startsWith("# file: ")) file = line.slice(8).replace(/^\.\/?/, "");
        else if (file !== null && /^trusted\.overlay\.opaque="y"/.test(line)) dirs.add(file);
      }
      return dirs;
    })();
    opaqueCache.set(layer, known);
  }
  return known;
}

export class ImageFs {
  /** @param layers unpacked layer directories, topmost first */
  constructor(readonly layers: readonly string[]) {}

  /** Whether `abs` (a directory in one of the layers) is marked opaque. */
  private async isOpaque(abs: string): Promise<boolean> {
    for (const layer of this.layers) {
      if (abs === layer || abs.startsWith(`${layer}/`)) return (await opaqueDirs(layer)).has(abs.slice(layer.length + 1));
    }
    return false;
  }

  /** The node at `rel` (final component not followed), or null when absent or hidden. */
  async lookup(rel: string): Promise<FsNode | null> {
    const clean = posix.normalize(`/${rel}`).slice(1).replace(/\/$/, "");
    const parts = clean ? clean.split("/") : [];
    for (const layer of this.layers) {
      const abs = clean ? join(layer, clean) : layer;
      const st = await lstatOrNull(abs);
      if (st) return isWhiteout(st) ? null : { rel: clean, abs, stat: st };
      // Absent here: does this layer hide the lower ones (whiteout, non-directory or opaque
      // directory at an ancestor)?
      for (let i = parts.length - 1; i >= 1; i--) {
        const anc = join(layer, ...parts.slice(0, i));
        const ast = await lstatOrNull(anc);
        if (!ast) continue;
        if (!ast.isDirectory()) return null;
        if (await this.isOpaque(anc)) return null;
        break;
      }
    }
    return null;
  }

  /** Names in the directory `rel`, merged over the layers, sorted. */
  async readdir(rel: string): Promise<string[]> {
    const names = new Set<string>();
    const hidden = new Set<string>();
    for (const layer of this.layers) {
      const abs = rel ? join(layer, rel) : layer;
      const st = await lstatOrNull(abs);
      if (!st) continue;
      if (!st.isDirectory()) break;
      for (const name of await fs.readdir(abs)) {
        if (names.has(name) || hidden.has(name)) continue;
        const child = await lstatOrNull(join(abs, name));
        if (child && isWhiteout(child)) hidden.add(name);
        else names.add(name);
      }
      if (await this.isOpaque(abs)) break;
    }
    return [...names].sort();
  }

  /**
   * Resolves symlinks in `rel` inside the view (and the last component too when `followLast`).
   * Returns the resolved relative path; it may not exist.
   */
  async resolve(rel: string, followLast: boolean): Promise<string> {
    let todo = posix.normalize(`/${rel}`).split("/").filter(Boolean);
    const done: string[] = [];
    let links = 0;
    while (todo.length) {
      const part = todo.shift()!;
      if (part === "..") {
        done.pop();
        continue;
      }
      const candidate = [...done, part].join("/");
      if (todo.length === 0 && !followLast) {
        done.push(part);
        break;
      }
      const node = await this.lookup(candidate);
      if (node?.stat.isSymbolicLink()) {
        if (++links > MAX_LINKS) throw new Error(`too many levels of symbolic links: ${rel}`);
        const target = await fs.readlink(node.abs);
        const next = target.split("/").filter(Boolean);
        if (target.startsWith("/")) done.length = 0;
        todo = [...next, ...todo];
        continue;
      }
      done.push(part);
    }
    return done.join("/");
  }
}
