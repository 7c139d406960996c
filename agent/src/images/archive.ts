/**
 * `docker save` and `docker load`. Save writes what Docker 25+ writes, a tar that is at once a
 * docker-archive (manifest.json, repositories) and an OCI image layout (oci-layout, index.json,
 * blobs/sha256/…), with uncompressed layers named by their diffIDs. Load reads either: the
 * docker-archive's manifest.json when present, otherwise the OCI layout's index.json (layers
 * then may be gzip or zstd), checks every layer against the config's diffIDs, and stores the
 * config bytes unchanged so the image keeps its ID.
 */
import { createReadStream } from "node:fs";
import * as fs from "node:fs/promises";
import { join, posix } from "node:path";
import { createHash } from "node:crypto";
import { InvalidError } from "@flotilla/core";
import { TAR_END, tarHeader, tarPadding } from "../build/tar-writer";
import { sha256Of } from "./digest";
import { DigestMismatchError } from "./errors";
import type { ImageRecord, LayerRef } from "./image-index";
import type { ImageStore } from "./image-store";
import { applyLayer } from "./layer-apply";
import { decompressorFor } from "./layer-store";
import { MediaType, type ImageConfigJson, type ImageIndexJson, type ImageManifestJson } from "./media-types";
import { canonicalReference, familiarize, parseReference } from "./reference";

const MTIME = 0;

function fileEntry(path: string, size: number): Buffer {
  return tarHeader({ path, type: "file", size, mode: 0o644, uid: 0, gid: 0, mtime: MTIME });
}

async function* bytesEntry(path: string, data: Buffer): AsyncGenerator<Buffer> {
  yield fileEntry(path, data.length);
  yield data;
  yield tarPadding(data.length);
}

/** The images `names` resolve to, with the tags to list for each (the names given, as Docker does). */
function selectImages(images: ImageStore, names: readonly string[]): Map<string, { record: ImageRecord; tags: string[] }> {
  const out = new Map<string, { record: ImageRecord; tags: string[] }>();
  for (const name of names) {
    const record = images.record(name);
    const entry = out.get(record.id) ?? { record, tags: [] };
    let tag: string | undefined;
    try {
      const ref = parseReference(name);
      if (!ref.digest && !/^(sha256:)?[0-9a-f]{6,64}$/.test(name)) tag = canonicalReference(ref);
    } catch {
      tag = undefined;
    }
    if (tag && images.tagsOf(record.id).includes(tag) && !entry.tags.includes(tag)) entry.tags.push(tag);
    out.set(record.id, entry);
  }
  return out;
}

/** Streams the archive of `names`. Each layer is decompressed to a temporary file first (a tar header needs the size). */
export async function* saveImages(images: ImageStore, names: readonly string[]): AsyncGenerator<Buffer> {
  const chosen = selectImages(images, names);
  const manifestJson: Array<{ Config: string; RepoTags: string[]; Layers: string[] }> = [];
  const repositories: Record<string, Record<string, string>> = {};
  const index: ImageIndexJson & {
    manifests: Array<{ mediaType: string; digest: string; size: number; annotations?: Record<string, string> }>;
  } = { schemaVersion: 2, mediaType: MediaType.ociIndex, manifests: [] };
  const written = new Set<string>();
  yield* bytesEntry("oci-layout", Buffer.from('{"imageLayoutVersion":"1.0.0"}'));
  yield tarHeader({ path: "blobs", type: "directory", size: 0, mode: 0o755, uid: 0, gid: 0, mtime: MTIME });
  yield tarHeader({ path: "blobs/sha256", type: "directory", size: 0, mode: 0o755, uid: 0, gid: 0, mtime: MTIME });
  for (const { record, tags } of chosen.values()) {
    const config = await images.blobs.readBlob(record.id);
    const hex = (d: string) => d.slice(7);
    if (!written.has(record.id)) {
      written.add(record.id);
      yield* bytesEntry(`blobs/sha256/${hex(record.id)}`, config);
    }
    const layerDescs: Array<{ mediaType: string; digest: string; size: number }> = [];
    for (const layer of record.layers) {
      const tmp = join(images.blobs.tmpDir, `save-${hex(layer.diffId).slice(0, 16)}-${Math.random().toString(36).slice(2)}`);
      try {
        const hash = createHash("sha256");
        const fh = await fs.open(tmp, "w", 0o600);
        try {
          for await (const chunk of await images.blobs.openLayerTar(layer.digest)) {
            hash.update(chunk as Buffer);
            await fh.write(chunk as Buffer);
          }
        } finally {
          await fh.close();
        }
        const actual = `sha256:${hash.digest("hex")}`;
        if (actual !== layer.diffId) throw new DigestMismatchError(`layer ${layer.digest}`, layer.diffId, actual);
        const size = (await fs.stat(tmp)).size;
        layerDescs.push({ mediaType: "application/vnd.oci.image.layer.v1.tar", digest: layer.diffId, size });
        if (written.has(layer.diffId)) continue;
        written.add(layer.diffId);
        yield fileEntry(`blobs/sha256/${hex(layer.diffId)}`, size);
        for await (const chunk of createReadStream(tmp)) yield chunk as Buffer;
        yield tarPadding(size);
      } finally {
        await fs.rm(tmp, { force: true });
      }
    }
    const manifest = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: MediaType.ociManifest,
        config: { mediaType: MediaType.ociConfig, digest: record.id, size: config.length },
        layers: layerDescs,
      }),
    );
    const manifestDigest = sha256Of(manifest);
    if (!written.has(manifestDigest)) {
      written.add(manifestDigest);
      yield* bytesEntry(`blobs/sha256/${hex(manifestDigest)}`, manifest);
    }
    const familiar = tags.map(familiarize);
    for (const t of tags.length ? tags : [""]) {
      index.manifests.push({
        mediaType: MediaType.ociManifest,
        digest: manifestDigest,
        size: manifest.length,
        ...(t
          ? { annotations: { "io.containerd.image.name": t, "org.opencontainers.image.ref.name": parseReference(t).tag ?? "latest" } }
          : {}),
      });
    }
    manifestJson.push({
      Config: `blobs/sha256/${hex(record.id)}`,
      RepoTags: familiar,
      Layers: record.layers.map((l) => `blobs/sha256/${hex(l.diffId)}`),
    });
    for (const t of familiar) {
      const colon = t.lastIndexOf(":");
      (repositories[t.slice(0, colon)] ??= {})[t.slice(colon + 1)] = hex(record.id);
    }
  }
  yield* bytesEntry("index.json", Buffer.from(JSON.stringify(index)));
  yield* bytesEntry("manifest.json", Buffer.from(JSON.stringify(manifestJson)));
  if (Object.keys(repositories).length) yield* bytesEntry("repositories", Buffer.from(JSON.stringify(repositories)));
  yield TAR_END;
}

interface LoadItem {
  configPath: string;
  layerPaths: string[];
  tags: string[];
}

async function readJson<T>(path: string, what: string): Promise<T> {
  try {
    return JSON.parse(await fs.readFile(path, "utf8")) as T;
  } catch (e) {
    throw new InvalidError(`invalid image archive: ${what}: ${(e as Error).message}`);
  }
}

function inside(root: string, rel: string): string {
  const clean = posix.normalize(`/${rel}`).slice(1);
  if (!clean || clean.startsWith("..")) throw new InvalidError(`invalid image archive: path ${rel}`);
  return join(root, clean);
}

/** What the unpacked archive holds: docker-archive first, OCI layout otherwise. */
async function loadItems(dir: string): Promise<LoadItem[]> {
  const exists = (p: string) =>
    fs.access(join(dir, p)).then(
      () => true,
      () => false,
    );
  if (await exists("manifest.json")) {
    const list = await readJson<Array<{ Config: string; RepoTags?: string[] | null; Layers: string[] }>>(
      join(dir, "manifest.json"),
      "manifest.json",
    );
    if (!Array.isArray(list)) throw new InvalidError("invalid image archive: manifest.json is not a list");
    return list.map((m) => ({
      configPath: inside(dir, m.Config),
      layerPaths: m.Layers.map((l) => inside(dir, l)),
      tags: m.RepoTags ?? [],
    }));
  }
  if (!(await exists("index.json")))
    throw new InvalidError("invalid image archive: neither manifest.json (docker-archive) nor index.json (OCI layout) found");
  const blob = (d: string) => inside(dir, `blobs/${d.replace(":", "/")}`);
  const items: LoadItem[] = [];
  const visit = async (idx: ImageIndexJson, inherited?: string): Promise<void> => {
    for (const m of idx.manifests ?? []) {
      const name = m.annotations?.["io.containerd.image.name"] ?? m.annotations?.["org.opencontainers.image.ref.name"] ?? inherited;
      const doc = await readJson<ImageManifestJson & ImageIndexJson>(blob(m.digest), m.digest);
      if (Array.isArray(doc.manifests)) {
        await visit(doc, name);
        continue;
      }
      let tags: string[] = [];
      if (name && /[:/]/.test(name)) {
        try {
          tags = [familiarize(canonicalReference(parseReference(name)))];
        } catch {
          tags = [];
        }
      }
      items.push({ configPath: blob(doc.config.digest), layerPaths: doc.layers.map((l) => blob(l.digest)), tags });
    }
  };
  await visit(await readJson<ImageIndexJson>(join(dir, "index.json"), "index.json"));
  return items;
}

async function* fileBytes(path: string): AsyncGenerator<Buffer> {
  const magic = Buffer.alloc(4);
  const fh = await fs.open(path);
  try {
    await fh.read(magic, 0, 4, 0);
  } finally {
    await fh.close();
  }
  const decompress = decompressorFor(magic, `layer ${posix.basename(path)}`);
  const raw = createReadStream(path);
  yield* (decompress ? raw.pipe(decompress) : raw) as AsyncIterable<Buffer>;
}

/** Loads an archive stream; calls `onLoaded` with "Loaded image: …" lines. */
export async function loadImages(images: ImageStore, source: AsyncIterable<Buffer>, onLoaded: (line: string) => void): Promise<string[]> {
  const dir = await fs.mkdtemp(join(images.blobs.tmpDir, "load-"));
  const releases: Array<() => void> = [];
  try {
    await applyLayer(source, dir, { layer: "image archive" }).catch((e: Error) => {
      throw new InvalidError(`invalid image archive: ${e.message.replace(/^layer image archive: /, "")}`);
    });
    const ids: string[] = [];
    for (const item of await loadItems(dir)) {
      const configBytes = await fs.readFile(item.configPath).catch(() => {
        throw new InvalidError(`invalid image archive: missing config ${posix.basename(item.configPath)}`);
      });
      const config = JSON.parse(configBytes.toString("utf8")) as ImageConfigJson;
      const diffIds = config.rootfs?.diff_ids ?? [];
      if (diffIds.length !== item.layerPaths.length)
        throw new InvalidError(`invalid image archive: ${item.layerPaths.length} layers for ${diffIds.length} diff_ids`);
      const layers: LayerRef[] = [];
      for (const [i, path] of item.layerPaths.entries()) {
        const { ref, release } = await images.addLayer(fileBytes(path));
        releases.push(release);
        if (ref.diffId !== diffIds[i]) throw new DigestMismatchError(`layer ${i} of the archive`, diffIds[i]!, ref.diffId);
        layers.push(ref);
      }
      const tags = item.tags.map((t) => canonicalReference(parseReference(t)));
      const id = await images.commitImage({ config, configBytes, layers, tags });
      ids.push(id);
      if (tags.length) for (const t of tags) onLoaded(`Loaded image: ${familiarize(t)}\n`);
      else onLoaded(`Loaded image ID: ${id}\n`);
    }
    return ids;
  } finally {
    for (const r of releases) r();
    await fs.rm(dir, { recursive: true, force: true });
  }
}
