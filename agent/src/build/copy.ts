/**
 * COPY and ADD: resolves sources (wildcards, symlinks inside their root, directories copied by
 * content) and the destination (relative to WORKDIR, through the image's own symlinks, directory
 * or file), then lays the result out as a sorted list of layer entries. Also the content hash the
 * build cache keys on: paths, modes and bytes, never times, as Docker documents.
 */
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { posix } from "node:path";
import type { FsNode, ImageFs } from "./image-fs";
import { InstructionError } from "./dockerfile";
import type { TarWriteEntry } from "./tar-writer";

export interface CopyEntry {
  header: TarWriteEntry;
  /** Host file with the content, for files. */
  source?: string;
}

export interface CopyPlan {
  entries: CopyEntry[];
  /** `file:<sha256>` or `dir:<sha256>` of what is copied; goes into history and the cache key. */
  contentId: string;
}

export interface CopyRequest {
  kind: "COPY" | "ADD";
  sources: readonly string[];
  dest: string;
  /** Where sources come from: the build context, or a stage's or image's file system. */
  from: ImageFs;
  fromContext: boolean;
  /** The image being built on (destination lookups). */
  image: ImageFs;
  workdir: string;
  /** Resolved `--chown`; absent: 0:0. */
  owner?: { uid: number; gid: number };
}

const WILDCARD = /[*?[]/;

function globRegex(pattern: string): RegExp {
  let re = "^";
  for (let i = 0; i < pattern.length; i++) {
    const ch = pattern[i]!;
    if (ch === "*") re += "[^/]*";
    else if (ch === "?") re += "[^/]";
    else if (ch === "[") {
      const end = pattern.indexOf("]", i + 1);
      if (end < 0) throw new InstructionError(`syntax error in pattern ${pattern}`);
      const cls = pattern.slice(i + 1, end);
      re += `[${cls.startsWith("^") ? `^${cls.slice(1)}` : cls}]`;
      i = end;
    } else if (ch === "\\" && i + 1 < pattern.length) re += pattern[++i]!.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
    else re += ch.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  }
  return new RegExp(`${re}$`);
}

/** A source path cleaned against its root; Docker's message for one that climbs out. */
function cleanSource(src: string, fromContext: boolean): string {
  const rel = posix.normalize(src.replace(/^\/+/, "") || ".");
  if (fromContext && (rel === ".." || rel.startsWith("../")))
    throw new InstructionError(`forbidden path outside the build context: ${src} ()`);
  return rel === "." || rel === ".." || rel.startsWith("../") ? "" : rel.replace(/\/$/, "");
}

/** Matches a wildcard source against the tree, one path segment at a time. */
async function expandWildcard(fsys: ImageFs, rel: string): Promise<string[]> {
  let matches = [""];
  for (const segment of rel.split("/")) {
    const next: string[] = [];
    for (const base of matches) {
      if (!WILDCARD.test(segment)) {
        next.push(base ? `${base}/${segment}` : segment);
        continue;
      }
      const re = globRegex(segment);
      const dir = await fsys.lookup(await fsys.resolve(base, true));
      if (!dir?.stat.isDirectory()) continue;
      for (const name of await fsys.readdir(dir.rel)) if (re.test(name)) next.push(base ? `${base}/${name}` : name);
    }
    matches = next;
  }
  return matches;
}

async function hashFile(path: string): Promise<string> {
  const h = createHash("sha256");
  for await (const chunk of createReadStream(path)) h.update(chunk as Buffer);
  return h.digest("hex");
}

/** Plans a COPY/ADD. Throws InstructionError with Docker's words for missing or bad sources. */
export async function planCopy(req: CopyRequest): Promise<CopyPlan> {
  const verb = req.kind;
  const found: Array<{ node: FsNode; name: string }> = [];
  let wildcard = false;
  for (const src of req.sources) {
    if (/^[a-z][a-z0-9+.-]*:\/\//i.test(src)) {
      if (verb === "COPY") throw new InstructionError(`COPY failed: source can't be a URL for COPY`);
      throw new InstructionError(
        `ADD failed: downloading ${src} is not supported by this agent (no network access for builds); put the file in the build context and ADD it from there`,
      );
    }
    const rel = cleanSource(src, req.fromContext);
    const candidates = WILDCARD.test(rel) ? await expandWildcard(req.from, rel) : [rel];
    if (WILDCARD.test(rel)) wildcard = true;
    for (const candidate of candidates) {
      const node = await req.from.lookup(await req.from.resolve(candidate, true));
      if (!node) {
        if (WILDCARD.test(rel)) continue;
        throw new InstructionError(
          req.fromContext
            ? `${verb} failed: file not found in build context or excluded by .dockerignore: stat ${rel || "."}: file does not exist`
            : `${verb} failed: stat ${src}: file does not exist`,
        );
      }
      found.push({ node, name: posix.basename(candidate) });
    }
  }
  if (found.length === 0) throw new InstructionError(`${verb} failed: no source files were specified`);

  const destRaw = req.dest;
  const destAbs = posix.resolve("/", req.workdir || "/", destRaw);
  const endsInSlash = destRaw.endsWith("/") || destRaw === "." || destRaw.endsWith("/.");
  if ((found.length > 1 || req.sources.length > 1) && !endsInSlash) {
    throw new InstructionError(`When using ${verb} with more than one source file, the destination must be a directory and end with a /`);
  }
  // The destination's parents resolve through the image's symlinks (e.g. /bin → usr/bin).
  const destRel = await req.image.resolve(destAbs.slice(1), false);
  const destNode = destRel ? await req.image.lookup(await req.image.resolve(destRel, true)) : await req.image.lookup("");
  const destIsDir = endsInSlash || found.length > 1 || wildcard || Boolean(destNode?.stat.isDirectory());
  const destDir = destNode?.stat.isDirectory() ? destNode.rel : destRel;

  const uid = req.owner?.uid ?? 0;
  const gid = req.owner?.gid ?? 0;
  const entries = new Map<string, CopyEntry>();
  const hash = createHash("sha256");

  const addDir = async (path: string, from?: FsNode) => {
    if (entries.has(path) || path === "") return;
    const existing = await req.image.lookup(path);
    const st = existing?.stat.isDirectory() ? existing.stat : from?.stat;
    const keep = existing?.stat.isDirectory();
    entries.set(path, {
      header: {
        path,
        type: "directory",
        size: 0,
        mode: st ? st.mode & 0o7777 : 0o755,
        uid: keep ? existing!.stat.uid : uid,
        gid: keep ? existing!.stat.gid : gid,
        mtime: st ? Math.floor(st.mtimeMs / 1000) : 0,
      },
    });
  };
  const addParents = async (path: string) => {
    const parts = path.split("/");
    for (let i = 1; i < parts.length; i++) await addDir(parts.slice(0, i).join("/"));
  };

  const addNode = async (node: FsNode, target: string) => {
    const st = node.stat;
    hash.update(`${target}\0${st.mode & 0o7777}\0`);
    if (st.isDirectory()) {
      await addDir(target, node);
      hash.update("dir\0");
      for (const name of await req.from.readdir(node.rel)) {
        const child = await req.from.lookup(node.rel ? `${node.rel}/${name}` : name);
        if (child) await addNode(child, target ? `${target}/${name}` : name);
      }
      return;
    }
    const base = { path: target, mode: st.mode & 0o7777, uid, gid, mtime: Math.floor(st.mtimeMs / 1000) };
    if (st.isSymbolicLink()) {
      const { readlink } = await import("node:fs/promises");
      const linkpath = await readlink(node.abs);
      hash.update(`link\0${linkpath}\0`);
      entries.set(target, { header: { ...base, type: "symlink", size: 0, linkpath } });
    } else if (st.isFile()) {
      hash.update(`file\0${await hashFile(node.abs)}\0`);
      entries.set(target, { header: { ...base, type: "file", size: st.size }, source: node.abs });
    }
    // Devices, FIFOs and sockets in a source tree are not copied, as Docker's COPY skips them.
  };

  for (const { node, name } of found) {
    if (node.stat.isDirectory()) {
      // A directory's contents go into the destination, not the directory itself.
      if (destDir) {
        await addParents(destDir);
        await addDir(destDir, node);
      }
      for (const child of await req.from.readdir(node.rel)) {
        const c = await req.from.lookup(node.rel ? `${node.rel}/${child}` : child);
        if (c) await addNode(c, destDir ? `${destDir}/${child}` : child);
      }
    } else {
      const target = destIsDir ? (destDir ? `${destDir}/${name}` : name) : destRel;
      if (!target) throw new InstructionError(`${verb} failed: cannot copy a file to the root directory itself`);
      await addParents(target);
      await addNode(node, target);
    }
  }
  const sorted = [...entries.values()].sort((a, b) => (a.header.path < b.header.path ? -1 : a.header.path > b.header.path ? 1 : 0));
  const single = found.length === 1 && !found[0]!.node.stat.isDirectory();
  return { entries: sorted, contentId: `${single ? "file" : "dir"}:${hash.digest("hex")}` };
}
