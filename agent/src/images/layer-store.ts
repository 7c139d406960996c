/**
 * Content-addressed storage under the store root:
 *
 *   blobs/sha256/<hex>     manifests, indexes, configs, and the compressed layer blobs (kept)
 *   layers/sha256/<hex>    one unpacked layer per diffID (sha256 of the uncompressed tar), the
 *                          directory handed to overlayfs as a lowerdir; shared by every image
 *   tmp/                   downloads and unpacking in progress; emptied at start
 *
 * Everything lands by rename from tmp/, so a reader never sees half a blob or half a layer, and a
 * crash leaves only litter in tmp/.
 */
import { createHash, type Hash } from "node:crypto";
import { createReadStream, createWriteStream } from "node:fs";
import * as fs from "node:fs/promises";
import { join } from "node:path";
import { pipeline } from "node:stream/promises";
import { Transform as NodeTransform, type Transform } from "node:stream";
import { Decompress as ZstdDecompress } from "fzstd";
import zlib from "node:zlib";
import { NotSupportedError } from "@flotilla/core";
import { digestHex, sha256Of } from "./digest";
import { DigestMismatchError, LayerInvalidError } from "./errors";
import { applyLayer, type ApplyLayerResult } from "./layer-apply";
import { scanLayer, type LayerScanResult } from "./layer-scan";
import type { XattrTool } from "./special-files";

/** A layer stored by storeTar. */
export interface StoredLayer {
  diffId: string;
  /** The gzip blob's digest and size (what a manifest lists). */
  digest: string;
  compressedSize: number;
  /** Bytes of file content (0 when the layer was already unpacked). */
  unpackedSize: number;
  tarSize: number;
}

export type ByteProgress = (current: number, total: number) => void;

/** A streaming zstd decompressor over fzstd, as a Node Transform. */
export function zstdDecompressor(): Transform {
  const stream: Transform = new NodeTransform({
    transform(chunk: Buffer, _enc, done) {
      try {
        decoder.push(chunk);
        done();
      } catch (e) {
        done(new Error(`zstd: ${(e as Error).message}`));
      }
    },
    flush(done) {
      try {
        decoder.push(new Uint8Array(0), true);
        done();
      } catch (e) {
        done(new Error(`zstd: ${(e as Error).message}`));
      }
    },
  });
  const decoder = new ZstdDecompress((data) => {
    stream.push(Buffer.from(data)); // a copy: the decoder may reuse its window
  });
  return stream;
}

/** Picks the decompressor from the first bytes; the media type can lie, magic numbers cannot. */
export function decompressorFor(magic: Buffer, what: string): Transform | undefined {
  // 128 KiB pieces instead of zlib's 16 KiB: a quarter as many hops through the tar reader.
  if (magic[0] === 0x1f && magic[1] === 0x8b) return zlib.createGunzip({ chunkSize: 128 << 10 });
  if (magic.readUInt32LE(0) === 0xfd2fb528) {
    // Node's zlib has zstd only from 22.15 / 23.8; use it there, fzstd (pure JS) on Node 20.
    const native = (zlib as unknown as { createZstdDecompress?: () => Transform }).createZstdDecompress;
    return native ? native() : zstdDecompressor();
  }
  if (magic.subarray(0, 3).toString("latin1") === "BZh" || magic.subarray(0, 4).equals(Buffer.from([0xfd, 0x37, 0x7a, 0x58]))) {
    throw new NotSupportedError(`${what} is bzip2- or xz-compressed; only gzip, zstd and plain tar layers are supported`);
  }
  return undefined; // A plain tar.
}

/** A decompressor's complaint (zlib's Z_* codes, fzstd's "zstd:") as what it means: a bad layer. */
function undecodable(digest: string): (e: unknown) => never {
  return (e) => {
    const err = e as { code?: unknown; message?: unknown };
    if ((typeof err?.code === "string" && err.code.startsWith("Z_")) || String(err?.message).startsWith("zstd:")) {
      throw new LayerInvalidError(digest, `cannot decompress: ${String(err.message)}`);
    }
    throw e;
  };
}

async function* counted(source: AsyncIterable<Buffer>, onBytes: (n: number) => void): AsyncGenerator<Buffer> {
  let n = 0;
  for await (const chunk of source) {
    n += chunk.length;
    onBytes(n);
    yield chunk;
  }
}

async function* hashed(source: AsyncIterable<Buffer>, hash: Hash): AsyncGenerator<Buffer> {
  for await (const chunk of source) {
    hash.update(chunk);
    yield chunk;
  }
}

export class LayerStore {
  readonly blobsDir: string;
  readonly layersDir: string;
  readonly tmpDir: string;

  constructor(
    readonly root: string,
    private readonly xattrTool?: XattrTool,
  ) {
    this.blobsDir = join(root, "blobs", "sha256");
    this.layersDir = join(root, "layers", "sha256");
    this.tmpDir = join(root, "tmp");
  }

  /** Creates the directories and throws away what a previous run left half done. */
  async init(): Promise<void> {
    await fs.rm(this.tmpDir, { recursive: true, force: true });
    for (const dir of [this.blobsDir, this.layersDir, this.tmpDir]) await fs.mkdir(dir, { recursive: true, mode: 0o700 });
  }

  blobPath(digest: string): string {
    return join(this.blobsDir, digestHex(digest));
  }

  /** The lowerdir for a layer. */
  layerPath(diffId: string): string {
    return join(this.layersDir, digestHex(diffId));
  }

  async hasBlob(digest: string): Promise<boolean> {
    return exists(this.blobPath(digest));
  }

  async hasLayer(diffId: string): Promise<boolean> {
    return exists(this.layerPath(diffId));
  }

  /** Stores a small verified blob (manifest, config). */
  async writeBlob(digest: string, bytes: Buffer): Promise<void> {
    const actual = sha256Of(bytes);
    if (actual !== digest) throw new DigestMismatchError(`blob ${digest}`, digest, actual);
    const tmp = join(this.tmpDir, `blob-${digestHex(digest)}-${process.pid}-${Math.random().toString(36).slice(2)}`);
    await fs.writeFile(tmp, bytes, { mode: 0o600 });
    await fs.rename(tmp, this.blobPath(digest));
  }

  /** Reads a stored blob and checks it, so a damaged store is noticed, not believed. */
  async readBlob(digest: string): Promise<Buffer> {
    const bytes = await fs.readFile(this.blobPath(digest));
    const actual = sha256Of(bytes);
    if (actual !== digest) throw new DigestMismatchError(`stored blob ${digest}`, digest, actual);
    return bytes;
  }

  /**
   * Writes a streamed blob to blobs/ once `source` completes. `source` must verify itself (the
   * registry client's streams do): if it throws, the partial file is removed and nothing lands.
   */
  async ingest(digest: string, source: AsyncIterable<Buffer>, onBytes?: (n: number) => void): Promise<void> {
    const tmp = join(this.tmpDir, `dl-${digestHex(digest)}-${process.pid}-${Math.random().toString(36).slice(2)}`);
    // Created before the first byte and closed before it is removed: a stream opening the file
    // itself could create it after a cancelled download had already cleaned up (CI once found a
    // dl- file left in tmp after a cancelled pull had returned).
    let file: fs.FileHandle;
    try {
      file = await fs.open(tmp, "wx", 0o600);
    } catch (e) {
      // The download is not read: let its source release the connection.
      await source[Symbol.asyncIterator]().return?.(undefined);
      throw e;
    }
    try {
      // A deep buffer: with the default 16 KiB, each 64 KiB piece off the socket waits for its write
      // to come back from the thread pool before the next is read (a 36 MB blob: 160 → 115 ms).
      await pipeline(counted(source, onBytes ?? (() => {})), file.createWriteStream({ highWaterMark: 8 << 20 }));
      await fs.rename(tmp, this.blobPath(digest));
    } catch (e) {
      await file.close().catch(() => undefined);
      await fs.rm(tmp, { force: true });
      throw e;
    }
  }

  /**
   * Unpacks the stored blob `digest` into layers/<diffId>, checking that the uncompressed
   * stream hashes to `diffId` (the config's rootfs.diff_ids entry). Extraction happens in tmp/
   * and is renamed into place, so a layer directory is either complete or absent.
   */
  async unpack(digest: string, diffId: string, onBytes?: ByteProgress): Promise<ApplyLayerResult> {
    const blob = this.blobPath(digest);
    const total = (await fs.stat(blob)).size;
    const magic = Buffer.alloc(4);
    const fh = await fs.open(blob);
    try {
      await fh.read(magic, 0, 4, 0);
    } finally {
      await fh.close();
    }
    const decompress = decompressorFor(magic, `layer ${digest}`);
    const tmp = await fs.mkdtemp(join(this.tmpDir, "layer-"));
    // mkdtemp makes 0700; the layer root is the container's `/` unless the tar says otherwise.
    await fs.chmod(tmp, 0o755);
    const hash = createHash("sha256");
    let result: ApplyLayerResult | undefined;
    const sink = async (source: AsyncIterable<Buffer>) => {
      result = await applyLayer(hashed(source, hash), tmp, { layer: digest, xattrTool: this.xattrTool });
    };
    const progress = (n: number) => onBytes?.(n, total);
    try {
      if (decompress)
        await pipeline(createReadStream(blob), (s: AsyncIterable<Buffer>) => counted(s, progress), decompress, sink).catch(
          undecodable(digest),
        );
      else await pipeline(createReadStream(blob), (s: AsyncIterable<Buffer>) => counted(s, progress), sink);
      const actual = `sha256:${hash.digest("hex")}`;
      if (actual !== diffId) throw new DigestMismatchError(`uncompressed layer ${digest}`, diffId, actual);
      try {
        await fs.rename(tmp, this.layerPath(diffId));
      } catch (e) {
        // Another process unpacked the same layer first; its copy is as good as ours.
        if (!["ENOTEMPTY", "EEXIST"].includes((e as NodeJS.ErrnoException).code ?? "")) throw e;
        await fs.rm(tmp, { recursive: true, force: true });
      }
      return result!;
    } catch (e) {
      await fs.rm(tmp, { recursive: true, force: true });
      throw e;
    }
  }

  /**
   * Checks a stored layer blob's content before anything is unpacked from it: decompressed (by
   * magic number), hashed against `diffId`, and read as a tar by scanLayer (its size, and the
   * refusals that need no disk). Writes nothing.
   */
  async verifyBlob(digest: string, diffId: string): Promise<LayerScanResult> {
    return this.checkTar(digest, diffId, () => createReadStream(this.blobPath(digest), { highWaterMark: 1 << 20 }));
  }

  /** Decompresses (by magic number), hashes against `diffId` and scans the tar of a layer blob. */
  private async checkTar(digest: string, diffId: string, bytes: () => AsyncIterable<Buffer>): Promise<LayerScanResult> {
    const hash = createHash("sha256");
    const head: Buffer[] = [];
    const source = bytes()[Symbol.asyncIterator]();
    let headBytes = 0;
    while (headBytes < 4) {
      const r = await source.next();
      if (r.done) break;
      head.push(r.value);
      headBytes += r.value.length;
    }
    const magic = Buffer.concat(head);
    const chunks = async function* () {
      yield* head;
      for (let r = await source.next(); !r.done; r = await source.next()) yield r.value;
    };
    let result: LayerScanResult | undefined;
    const sink = async (s: AsyncIterable<Buffer>) => {
      result = await scanLayer(hashed(s, hash), digest);
    };
    const decompress = magic.length >= 4 ? decompressorFor(magic, `layer ${digest}`) : undefined;
    if (decompress) await pipeline(chunks(), decompress, sink).catch(undecodable(digest));
    else await pipeline(chunks(), sink);
    const actual = `sha256:${hash.digest("hex")}`;
    if (actual !== diffId) throw new DigestMismatchError(`uncompressed layer ${digest}`, diffId, actual);
    return result!;
  }

  /**
   * Stores a layer made here (a build step, a loaded archive) from its uncompressed tar: the tar
   * lands in tmp/ while its diffID is computed, then is gzipped into blobs/ (kept, for push and
   * save) and unpacked into layers/ side by side. `known` names a blob already stored for the
   * same diffID, which is then reused instead of compressing again.
   */
  async storeTar(source: AsyncIterable<Buffer>, known?: (diffId: string) => string | undefined): Promise<StoredLayer> {
    const tar = join(this.tmpDir, `tar-${process.pid}-${Math.random().toString(36).slice(2)}`);
    const diffHash = createHash("sha256");
    let tarSize = 0;
    try {
      await pipeline(
        hashed(
          counted(source, (n) => (tarSize = n)),
          diffHash,
        ),
        createWriteStream(tar, { mode: 0o600 }),
      );
      const diffId = `sha256:${diffHash.digest("hex")}`;
      const reuse = known?.(diffId);
      const haveBlob = reuse !== undefined && (await this.hasBlob(reuse));
      const compress = async (): Promise<{ digest: string; size: number }> => {
        if (haveBlob) return { digest: reuse!, size: (await fs.stat(this.blobPath(reuse!))).size };
        const gz = `${tar}.gz`;
        const hash = createHash("sha256");
        let size = 0;
        await pipeline(
          createReadStream(tar),
          zlib.createGzip(),
          (s: AsyncIterable<Buffer>) =>
            hashed(
              counted(s, (n) => (size = n)),
              hash,
            ),
          createWriteStream(gz, { mode: 0o600 }),
        );
        const digest = `sha256:${hash.digest("hex")}`;
        await fs.rename(gz, this.blobPath(digest));
        return { digest, size };
      };
      const unpack = async (): Promise<number> => {
        if (await this.hasLayer(diffId)) return 0;
        const dir = await fs.mkdtemp(join(this.tmpDir, "layer-"));
        await fs.chmod(dir, 0o755);
        try {
          const r = await applyLayer(createReadStream(tar) as AsyncIterable<Buffer>, dir, { layer: diffId, xattrTool: this.xattrTool });
          await fs.rename(dir, this.layerPath(diffId)).catch(async (e: NodeJS.ErrnoException) => {
            if (!["ENOTEMPTY", "EEXIST"].includes(e.code ?? "")) throw e;
            await fs.rm(dir, { recursive: true, force: true });
          });
          return r.size;
        } catch (e) {
          await fs.rm(dir, { recursive: true, force: true });
          throw e;
        }
      };
      const [blob, size] = await Promise.all([compress(), unpack()]);
      return { diffId, digest: blob.digest, compressedSize: blob.size, unpackedSize: size, tarSize };
    } finally {
      await fs.rm(tar, { force: true });
      await fs.rm(`${tar}.gz`, { force: true });
    }
  }

  /** The uncompressed tar of a stored layer blob (gzip, zstd or plain), for save. */
  async openLayerTar(digest: string): Promise<AsyncIterable<Buffer>> {
    const blob = this.blobPath(digest);
    const magic = Buffer.alloc(4);
    const fh = await fs.open(blob);
    try {
      await fh.read(magic, 0, 4, 0);
    } finally {
      await fh.close();
    }
    const decompress = decompressorFor(magic, `layer ${digest}`);
    const raw = createReadStream(blob);
    return decompress ? raw.pipe(decompress) : raw;
  }

  async removeBlob(digest: string): Promise<void> {
    await fs.rm(this.blobPath(digest), { force: true });
  }

  /** Deletes a layer directory: renamed away first, so it vanishes from layers/ at once. */
  async removeLayer(diffId: string): Promise<void> {
    const doomed = join(this.tmpDir, `rm-${digestHex(diffId)}-${Math.random().toString(36).slice(2)}`);
    try {
      await fs.rename(this.layerPath(diffId), doomed);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "ENOENT") return;
      throw e;
    }
    await fs.rm(doomed, { recursive: true, force: true });
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await fs.lstat(path);
    return true;
  } catch {
    return false;
  }
}
