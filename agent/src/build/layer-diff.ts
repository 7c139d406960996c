/**
 * Turns a directory in overlayfs form (a container's upper dir, or any unpacked layer) into a
 * layer tar: entries sorted by name, whiteouts (character devices 0/0) written as `.wh.<name>`,
 * opaque directories (trusted.overlay.opaque=y) followed by `.wh..wh..opq`, hardlinks kept,
 * xattrs kept except overlayfs's own. The same directory always gives the same bytes.
 */
import { execFile } from "node:child_process";
import { createReadStream } from "node:fs";
import * as fs from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { OPAQUE_MARKER, WHITEOUT_PREFIX } from "../images/layer-paths";
import { TAR_END, tarHeader, tarPadding, type TarWriteEntry } from "./tar-writer";

const run = promisify(execFile);

/** getfattr's octal escapes (`\012`) back to bytes. */
function unescapeDumpPath(text: string): string {
  const bytes: number[] = [];
  for (let i = 0; i < text.length; i++) {
    if (text[i] === "\\" && /^[0-7]{3}$/.test(text.slice(i + 1, i + 4))) {
      bytes.push(parseInt(text.slice(i + 1, i + 4), 8));
      i += 3;
    } else bytes.push(...Buffer.from(text[i]!, "utf8"));
  }
  return Buffer.from(bytes).toString("utf8");
}

/** Every xattr below `root` (symlinks not followed), by relative path. One helper process. */
export async function readXattrs(root: string): Promise<Map<string, Record<string, Buffer>>> {
  const out = new Map<string, Record<string, Buffer>>();
  let dump: string;
  try {
    ({ stdout: dump } = await run("getfattr", ["-R", "-P", "-d", "-m", "-", "-e", "hex", "."], { cwd: root, maxBuffer: 64 << 20 }));
  } catch (e) {
    const err = e as { code?: string | number; stdout?: string };
    if (err.code === "ENOENT") throw new Error("reading a layer's extended attributes needs getfattr (Debian package attr)", { cause: e });
    dump = err.stdout ?? ""; // getfattr exits 1 when some file has none it may read; what it printed stands
  }
  let current: Record<string, Buffer> | null = null;
  for (const line of dump.split("\n")) {
    if (line.startsWith("# file: ")) {
      const rel = unescapeDumpPath(line.slice(8)).replace(/^\.\/?/, "");
      current = {};
      out.set(rel, current);
      continue;
    }
    const eq = line.indexOf("=");
    if (current && eq > 0) {
      const value = line.slice(eq + 1);
      current[line.slice(0, eq)] = value.startsWith("0x") ? Buffer.from(value.slice(2), "hex") : Buffer.from(value.replace(/^"|"$/g, ""));
    }
  }
  return out;
}

export interface DiffOptions {
  /** Relative paths to leave out with everything below them (mount points the runtime made). */
  exclude?: (rel: string) => boolean;
}

/** Streams the layer tar of `root`. The root directory itself is not an entry. */
export async function* directoryLayerTar(root: string, opts: DiffOptions = {}): AsyncGenerator<Buffer> {
  const xattrs = await readXattrs(root);
  const inodes = new Map<string, string>();
  const keepXattrs = (rel: string) => {
    const all = xattrs.get(rel);
    if (!all) return undefined;
    const kept = Object.fromEntries(Object.entries(all).filter(([k]) => !k.startsWith("trusted.overlay.")));
    return Object.keys(kept).length ? kept : undefined;
  };

  async function* walk(rel: string): AsyncGenerator<Buffer> {
    const names = (await fs.readdir(rel ? join(root, rel) : root)).sort((a, b) => (Buffer.from(a) < Buffer.from(b) ? -1 : 1));
    for (const name of names) {
      const path = rel ? `${rel}/${name}` : name;
      if (opts.exclude?.(path)) continue;
      const abs = join(root, path);
      const st = await fs.lstat(abs);
      const base: Omit<TarWriteEntry, "type" | "size"> = {
        path,
        mode: st.mode & 0o7777,
        uid: st.uid,
        gid: st.gid,
        mtime: Math.floor(st.mtimeMs / 1000),
        xattrs: keepXattrs(path),
      };
      if (st.isCharacterDevice() && st.rdev === 0) {
        const wh = rel ? `${rel}/${WHITEOUT_PREFIX}${name}` : `${WHITEOUT_PREFIX}${name}`;
        yield tarHeader({ path: wh, type: "file", size: 0, mode: 0o600, uid: 0, gid: 0, mtime: base.mtime });
      } else if (st.isDirectory()) {
        yield tarHeader({ ...base, type: "directory", size: 0 });
        if (xattrs.get(path)?.["trusted.overlay.opaque"]?.toString() === "y") {
          yield tarHeader({ path: `${path}/${OPAQUE_MARKER}`, type: "file", size: 0, mode: 0o600, uid: 0, gid: 0, mtime: base.mtime });
        }
        yield* walk(path);
      } else if (st.isSymbolicLink()) {
        yield tarHeader({ ...base, type: "symlink", size: 0, linkpath: await fs.readlink(abs) });
      } else if (st.isFile()) {
        const key = `${st.dev}:${st.ino}`;
        const first = st.nlink > 1 ? inodes.get(key) : undefined;
        if (first !== undefined) {
          yield tarHeader({ ...base, type: "hardlink", size: 0, linkpath: first });
          continue;
        }
        if (st.nlink > 1) inodes.set(key, path);
        yield tarHeader({ ...base, type: "file", size: st.size });
        let written = 0;
        for await (const chunk of createReadStream(abs)) {
          const part = chunk as Buffer;
          // A file that grows while we read it must not break the archive.
          const take = part.subarray(0, Math.max(0, st.size - written));
          written += take.length;
          if (take.length) yield take;
        }
        if (written < st.size) yield Buffer.alloc(st.size - written);
        yield tarPadding(st.size);
      } else if (st.isCharacterDevice() || st.isBlockDevice()) {
        const rdev = Number(st.rdev);
        const major = ((rdev >> 8) & 0xfff) | ((rdev >> 32) & ~0xfff);
        const minor = (rdev & 0xff) | ((rdev >> 12) & ~0xff);
        yield tarHeader({ ...base, type: st.isCharacterDevice() ? "char" : "block", size: 0, devmajor: major, devminor: minor });
      } else if (st.isFIFO()) {
        yield tarHeader({ ...base, type: "fifo", size: 0 });
      }
      // Sockets are not archived, as in Docker.
    }
  }
  yield* walk("");
  yield TAR_END;
}
