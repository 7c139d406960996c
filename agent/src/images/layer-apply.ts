/**
 * Unpacks one layer tar into an empty directory in the form overlayfs wants for a lowerdir:
 * `.wh.<name>` becomes a character device 0/0 named `<name>`, `.wh..wh..opq` becomes the xattr
 * trusted.overlay.opaque=y on its directory. Each layer gets its own directory (it is never
 * applied on top of its parent), so whiteouts only need converting, not executing.
 *
 * Safety: every path is normalised and must stay inside the directory; nothing is ever written
 * through a symlink (we track what each path is, since we created all of it); hardlinks may only
 * point at files of this same layer; files are opened O_NOFOLLOW|O_EXCL.
 * Fidelity: modes (with setuid/setgid/sticky), uid/gid, mtimes, symlinks, hardlinks, devices,
 * FIFOs and xattrs (SCHILY.xattr, minus overlay's own) are kept.
 */
import * as fsSync from "node:fs";
import { constants as fsc } from "node:fs";
import * as fs from "node:fs/promises";
import { join } from "node:path";
import { LayerInvalidError } from "./errors";
import { ancestors, classifyEntry, isAllowedLayerXattr, normalizeEntryPath, PathEscapeError } from "./layer-paths";
import { mknod, OVERLAY_OPAQUE_XATTR, writeXattrs, type XattrItem, type XattrTool } from "./special-files";
import { readTar, TarFormatError, type TarEntry } from "./tar-reader";

export interface ApplyLayerOptions {
  /** Names the layer in errors (its digest). */
  layer: string;
  /** Force an xattr helper; detected when absent. */
  xattrTool?: XattrTool;
}

export interface ApplyLayerResult {
  /** Bytes of regular-file content, Docker's notion of a layer's size. */
  size: number;
  entries: number;
  whiteouts: number;
  opaqueDirs: number;
}

type Kind = "dir" | "file" | "symlink" | "whiteout" | "special";

/**
 * Files up to this size are written in one synchronous burst. Other metadata calls are
 * synchronous too: each is a few microseconds, where an awaited thread-pool round trip costs
 * ~100 µs, and a layer of thousands of files is made of little else.
 */
const SMALL_FILE = 256 << 10;

const OPEN_NEW = fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL | fsc.O_NOFOLLOW;

/** Applies the tar stream `source` into `dest` (an existing empty directory). */
export async function applyLayer(source: AsyncIterable<Buffer>, dest: string, opts: ApplyLayerOptions): Promise<ApplyLayerResult> {
  // What we created at each relative path. The directory started empty and only we write to it,
  // so this map is the truth about symlinks: no lstat needed to refuse writing through one.
  const known = new Map<string, Kind>([["", "dir"]]);
  const dirMeta = new Map<string, { mode: number; mtime: number }>();
  const xattrs = new Map<string, XattrItem[]>();
  const opaque = new Set<string>();
  const asRoot = process.getuid?.() === 0;
  // Read once (setting it back at once): files whose mode it would cut are chmod-ed after creation.
  const umask = process.umask(0o022);
  process.umask(umask);
  const result: ApplyLayerResult = { size: 0, entries: 0, whiteouts: 0, opaqueDirs: 0 };
  const abs = (p: string) => (p === "" ? dest : join(dest, p));
  const invalid = (problem: string) => new LayerInvalidError(opts.layer, problem);

  const ensureDir = async (path: string, parentsOnly: boolean) => {
    for (const dir of parentsOnly ? ancestors(path) : [...ancestors(path), path]) {
      const kind = known.get(dir);
      if (kind === "dir") continue;
      if (kind === undefined || kind === "whiteout") {
        // Content below a whited-out name: the directory is recreated, hiding the lower one.
        if (kind === "whiteout") {
          fsSync.unlinkSync(abs(dir));
          opaque.add(dir);
        }
        fsSync.mkdirSync(abs(dir), { mode: 0o755 });
        known.set(dir, "dir");
        continue;
      }
      throw invalid(`${path}: ${dir} is a ${kind === "symlink" ? "symlink" : "non-directory"}; refusing to write through it`);
    }
  };

  /** Makes room for a new entry of `next` kind at `path`, as a later entry replaces an earlier one. */
  const clear = async (path: string, next: Kind) => {
    const kind = known.get(path);
    if (kind === undefined || (kind === "dir" && next === "dir")) return;
    if (kind === "dir") {
      await fs.rm(abs(path), { recursive: true, force: true });
      const under = `${path}/`;
      for (const map of [known, dirMeta, xattrs] as Array<Map<string, unknown>>) {
        for (const key of [...map.keys()]) if (key.startsWith(under)) map.delete(key);
      }
      for (const d of [...opaque]) if (d.startsWith(under)) opaque.delete(d);
      opaque.delete(path);
      dirMeta.delete(path);
    } else {
      fsSync.unlinkSync(abs(path));
    }
    // A directory replacing a whiteout must hide the lower directory's content: that is what
    // overlayfs itself records for rmdir + mkdir, an opaque directory.
    if (kind === "whiteout" && next === "dir") opaque.add(path);
    known.delete(path);
    xattrs.delete(path);
  };

  const create = async (path: string, entry: TarEntry, body: AsyncIterable<Buffer>): Promise<Kind | "file-done" | undefined> => {
    const target = abs(path);
    switch (entry.type) {
      case "directory":
        await clear(path, "dir");
        if (!known.has(path)) fsSync.mkdirSync(target, { mode: 0o700 });
        return "dir";
      case "file": {
        await clear(path, "file");
        if (entry.size <= SMALL_FILE) {
          // Most files of an image are small: one buffer and synchronous calls on the fd cost a
          // few microseconds, where a chain of awaited thread-pool calls costs ~100 µs per file.
          const chunks: Buffer[] = [];
          for await (const chunk of body) chunks.push(chunk);
          const data = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
          // Created with its final mode where the umask leaves it whole, owned by us (root:root
          // when root): the common file then needs no chown or chmod, two syscalls of six.
          const plain = (entry.mode & 0o7000) === 0 && (entry.mode & umask) === 0;
          const fd = fsSync.openSync(target, OPEN_NEW, plain ? entry.mode & 0o777 : 0o600);
          try {
            for (let off = 0; off < data.length;) off += fsSync.writeSync(fd, data, off);
            if (asRoot && (entry.uid !== 0 || entry.gid !== 0)) fsSync.fchownSync(fd, entry.uid, entry.gid);
            // chmod after chown: chown clears setuid/setgid bits.
            if (!plain || (asRoot && (entry.uid !== 0 || entry.gid !== 0))) fsSync.fchmodSync(fd, entry.mode);
            fsSync.futimesSync(fd, entry.mtime, entry.mtime);
          } finally {
            fsSync.closeSync(fd);
          }
          result.size += entry.size;
          return "file-done";
        }
        const fh = await fs.open(target, OPEN_NEW, 0o600);
        try {
          for await (const chunk of body) {
            // write() may take less than asked; loop until the chunk is on disk.
            for (let off = 0; off < chunk.length;) off += (await fh.write(chunk, off)).bytesWritten;
          }
        } finally {
          await fh.close();
        }
        result.size += entry.size;
        return "file";
      }
      case "symlink":
        await clear(path, "symlink");
        // The target is stored verbatim: it is resolved inside the container's root at run time,
        // and we never resolve it while extracting.
        fsSync.symlinkSync(entry.linkpath, target);
        return "symlink";
      case "char":
      case "block":
      case "fifo":
        await clear(path, "special");
        await mknod(target, entry.type === "char" ? "c" : entry.type === "block" ? "b" : "p", entry.mode, entry.devmajor, entry.devminor);
        return "special";
      default:
        return undefined; // Unknown typeflags (GNU sparse, volume labels…) are skipped, as Docker does.
    }
  };

  try {
    for await (const { entry, body } of readTar(source)) {
      result.entries++;
      let path: string;
      try {
        path = normalizeEntryPath(entry.path);
      } catch (e) {
        throw invalid((e as PathEscapeError).message);
      }
      const meaning = classifyEntry(path);
      try {
        if (meaning.kind === "skip") continue;
        if (meaning.kind === "opaque") {
          await ensureDir(meaning.dir, false);
          opaque.add(meaning.dir);
          continue;
        }
        if (meaning.kind === "whiteout") {
          await ensureDir(meaning.path, true);
          // OCI: a whiteout only hides lower layers; an entry of this layer with the name stays.
          if (known.has(meaning.path)) continue;
          await mknod(abs(meaning.path), "c", 0, 0, 0);
          if (asRoot) await fs.lchown(abs(meaning.path), entry.uid, entry.gid);
          known.set(meaning.path, "whiteout");
          result.whiteouts++;
          continue;
        }
        if (path === "" && entry.type !== "directory")
          throw invalid(`entry ${JSON.stringify(entry.path)} for the layer root is not a directory`);
        await ensureDir(path, true);

        if (entry.type === "hardlink") {
          let linked: string;
          try {
            linked = normalizeEntryPath(entry.linkpath);
          } catch (e) {
            throw invalid(`hardlink ${entry.path}: ${(e as Error).message}`);
          }
          const kind = known.get(linked);
          if (kind === undefined || kind === "dir" || kind === "whiteout") {
            throw invalid(`hardlink ${entry.path} → ${entry.linkpath}: target is not a file of this layer`);
          }
          await clear(path, kind);
          fsSync.linkSync(abs(linked), abs(path));
          known.set(path, kind); // Same inode: its metadata came with the first name.
          continue;
        }

        const made = await create(path, entry, body);
        if (!made) continue;
        const kind: Kind = made === "file-done" ? "file" : made;
        known.set(path, kind);
        const target = abs(path);
        const own = Object.entries(entry.xattrs).filter(([name]) => isAllowedLayerXattr(name));
        if (own.length)
          xattrs.set(
            path,
            own.map(([name, value]) => ({ path, name, value })),
          );
        if (made === "file-done") continue; // owner, mode and times already set on the fd
        if (kind === "symlink") {
          if (asRoot) fsSync.lchownSync(target, entry.uid, entry.gid);
          fsSync.lutimesSync(target, entry.mtime, entry.mtime);
          continue;
        }
        if (asRoot) fsSync.lchownSync(target, entry.uid, entry.gid);
        if (kind === "dir") {
          // Mode and mtime of directories last: writing children would change the mtime, and a
          // read-only mode would stop a non-root extraction.
          dirMeta.set(path, { mode: entry.mode, mtime: entry.mtime });
        } else {
          // chmod after chown: chown clears setuid/setgid bits.
          fsSync.chmodSync(target, entry.mode);
          fsSync.lutimesSync(target, entry.mtime, entry.mtime);
        }
      } catch (e) {
        // A tar that ends inside this entry's body is a bad archive, said below as such.
        if (e instanceof LayerInvalidError || e instanceof TarFormatError) throw e;
        const err = e as Error;
        throw Object.assign(new Error(`layer ${opts.layer}: ${entry.path}: ${err.message}`), { cause: err });
      }
    }
  } catch (e) {
    if (e instanceof TarFormatError) throw invalid(`not a valid tar archive: ${e.message}`);
    throw e;
  }

  // xattrs after every chown (chown drops security.capability). Opaque markers must land or the
  // layer would show lower content it hides; the layer's own xattrs are best effort, as in
  // Docker: some file systems refuse some namespaces (user.* on symlinks, for one).
  const markers: XattrItem[] = [...opaque].map((dir) => ({ path: dir, name: OVERLAY_OPAQUE_XATTR, value: Buffer.from("y") }));
  await writeXattrs(dest, markers, opts.xattrTool);
  await writeXattrs(dest, [...xattrs.values()].flat(), opts.xattrTool, true);
  result.opaqueDirs = opaque.size;

  const dirs = [...dirMeta.entries()].sort((a, b) => b[0].split("/").length - a[0].split("/").length);
  for (const [path, meta] of dirs) {
    fsSync.chmodSync(abs(path), meta.mode);
    fsSync.utimesSync(abs(path), meta.mtime, meta.mtime);
  }
  return result;
}
