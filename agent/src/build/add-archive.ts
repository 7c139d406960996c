/**
 * ADD of a local tar archive (plain or gzip): its entries are unpacked into the destination
 * directory, as Docker's ADD does, by rewriting them into the step's layer tar under the
 * destination path. Archive paths are normalised and must stay inside the destination.
 */
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import * as fs from "node:fs/promises";
import { posix } from "node:path";
import { Readable } from "node:stream";
import zlib from "node:zlib";
import { normalizeEntryPath } from "../images/layer-paths";
import { readTar } from "../images/tar-reader";
import { InstructionError } from "./dockerfile";
import type { ImageFs } from "./image-fs";
import { TAR_END, tarHeader, tarPadding, type TarWriteEntry } from "./tar-writer";

export interface ArchivePlan {
  contentId: string;
  tar: () => AsyncIterable<Buffer>;
}

async function kind(path: string): Promise<"gzip" | "tar" | "other"> {
  const fh = await fs.open(path);
  try {
    const head = Buffer.alloc(512);
    const { bytesRead } = await fh.read(head, 0, 512, 0);
    if (bytesRead >= 2 && head[0] === 0x1f && head[1] === 0x8b) return "gzip";
    if (bytesRead >= 262 && head.subarray(257, 262).toString("latin1") === "ustar") return "tar";
    return "other";
  } finally {
    await fh.close();
  }
}

function open(path: string, k: "gzip" | "tar"): AsyncIterable<Buffer> {
  const raw = createReadStream(path);
  return k === "gzip" ? (raw.pipe(zlib.createGunzip()) as Readable) : raw;
}

/**
 * A plan when the sources are one local archive; null otherwise (then ADD copies like COPY).
 * gzip files that are not tars are copied as they are, as in Docker.
 */
export async function planArchiveAdd(
  sources: readonly string[],
  dest: string,
  workdir: string,
  context: ImageFs,
  image: ImageFs,
): Promise<ArchivePlan | null> {
  if (sources.length !== 1 || /[*?[]/.test(sources[0]!) || /^[a-z]+:\/\//i.test(sources[0]!)) return null;
  const rel = posix.normalize(sources[0]!.replace(/^\/+/, "") || ".");
  if (rel.startsWith("..")) return null; // planCopy gives the message
  const node = await context.lookup(await context.resolve(rel === "." ? "" : rel, true));
  if (!node?.stat.isFile()) return null;
  let k = await kind(node.abs);
  if (k === "gzip") {
    // Only a gzip whose content is a tar is unpacked.
    const inner = Buffer.alloc(0);
    const chunks: Buffer[] = [inner];
    for await (const c of open(node.abs, "gzip")) {
      chunks.push(c as Buffer);
      if (Buffer.concat(chunks).length >= 262) break;
    }
    const head = Buffer.concat(chunks);
    if (head.subarray(257, 262).toString("latin1") !== "ustar") k = "other";
  }
  if (k === "other") return null;
  const archiveKind = k;
  const hash = createHash("sha256");
  for await (const c of createReadStream(node.abs)) hash.update(c as Buffer);
  const destDir = (await image.resolve(posix.resolve("/", workdir || "/", dest).slice(1), true)).replace(/\/$/, "");

  async function* parents(): AsyncGenerator<Buffer> {
    const parts = destDir ? destDir.split("/") : [];
    for (let i = 1; i <= parts.length; i++) {
      const p = parts.slice(0, i).join("/");
      const existing = await image.lookup(p);
      const st = existing?.stat.isDirectory() ? existing.stat : undefined;
      yield tarHeader({
        path: p,
        type: "directory",
        size: 0,
        mode: st ? st.mode & 0o7777 : 0o755,
        uid: st?.uid ?? 0,
        gid: st?.gid ?? 0,
        mtime: st ? Math.floor(st.mtimeMs / 1000) : 0,
      });
    }
  }

  async function* tar(): AsyncGenerator<Buffer> {
    yield* parents();
    const under = (p: string) => (destDir ? (p ? `${destDir}/${p}` : destDir) : p);
    for await (const { entry, body } of readTar(open(node!.abs, archiveKind))) {
      let path: string;
      try {
        path = normalizeEntryPath(entry.path);
      } catch (e) {
        throw new InstructionError(`ADD failed: ${(e as Error).message}`);
      }
      if (path === "" || !["file", "directory", "symlink", "hardlink"].includes(entry.type)) continue;
      const header: TarWriteEntry = {
        path: under(path),
        type: entry.type as TarWriteEntry["type"],
        mode: entry.mode,
        uid: entry.uid,
        gid: entry.gid,
        size: entry.type === "file" ? entry.size : 0,
        mtime: Math.floor(entry.mtime),
        ...(entry.type === "symlink" ? { linkpath: entry.linkpath } : {}),
        ...(entry.type === "hardlink" ? { linkpath: under(normalizeEntryPath(entry.linkpath)) } : {}),
      };
      yield tarHeader(header);
      if (header.type === "file") {
        for await (const chunk of body) yield chunk;
        yield tarPadding(header.size);
      }
    }
    yield TAR_END;
  }

  return { contentId: `file:${hash.digest("hex")}`, tar };
}
