/**
 * `docker pull` for the image store: resolve the reference to a manifest for our platform, fetch
 * and check the config, download the layer blobs not already here (three at a time, each digest
 * checked), then record the image and its tag in one index update, and hand the layers to the
 * unpacker, which checks their content and writes their directories after the pull returned. Reports Docker-style progress throughout.
 *
 * Order matters for safety: a layer blob is downloaded into tmp/ and lands in blobs/ only once it
 * matched its digest; the image becomes visible only after all its blobs are. Its content is
 * checked (diffID, tar scan) before anything is unpacked from it, and the extractor checks every
 * entry again when it writes the files; a blob that fails is dropped and resolve() reports why.
 */
import { InvalidError, NotSupportedError, pullSources, type RegistryMirror } from "@flotilla/core";
import { assertDigest } from "./digest";
import { NoMatchingManifestError } from "./errors";
import type { ImageIndex, ImageRecord } from "./image-index";
import type { LayerStore } from "./layer-store";
import { CONFIG_TYPES, LAYER_TYPES, type Descriptor, type ImageConfigJson } from "./media-types";
import { formatPlatform, pickManifest, type Platform } from "./platform";
import { byteProgress, layerStatus, shortId, throttled, type ProgressListener } from "./progress";
import { canonicalReference, canonicalRepository, familiarReference, parseReference, type ImageReference } from "./reference";
import { runLimited } from "../run-limited";
import type { Credentials, FetchedManifest, RegistryClient, RequestContext } from "./registry-client";
import type { Unpacker } from "./unpacker";

export interface PullOptions {
  /** Receives each progress message, in order, as `docker pull` would stream them. */
  onProgress?: ProgressListener;
  signal?: AbortSignal;
  /** Credentials for this pull only (the agent decodes them from X-Registry-Auth). */
  credentials?: Credentials;
  /** Defaults to the store's platform (the host's). */
  platform?: Platform;
}

export interface PullResult {
  /** Image ID: the config digest. */
  id: string;
  /** Familiar reference as pulled: `busybox:latest`. */
  reference: string;
  /** Digest of what the reference resolved to (the index for multi-platform images). */
  digest: string;
  /** True when the tag already pointed at this image: nothing new was stored. */
  upToDate: boolean;
}

/** What pull needs from the store; shared with remove(), which must respect pins. */
export interface PullDeps {
  client: RegistryClient;
  layers: LayerStore;
  index: ImageIndex;
  platform: Platform;
  concurrency: number;
  /** diffID → number of pulls relying on it; garbage collection leaves pinned layers alone. */
  pins: Map<string, number>;
  /** diffID → the download in progress, so two pulls never fetch the same layer at once. */
  inflight: Map<string, Promise<void>>;
  /** diffID → its deletion by remove(), in progress; such a layer is absent for a pull. */
  deleting: Map<string, Promise<void>>;
  /** Serialises a pull's commit (metadata blobs + index) with remove()'s deletions. */
  commits: Serial;
  /** Writes the layer directories after the pull (see unpacker.ts). */
  unpacker: Unpacker;
  /** Docker Hub mirrors, tried in order before Docker Hub (mirrors.ts). */
  mirrors: readonly RegistryMirror[];
}

/** Runs async sections one at a time, in call order. */
export class Serial {
  private tail: Promise<unknown> = Promise.resolve();

  run<T>(section: () => Promise<T>): Promise<T> {
    const next = this.tail.then(section);
    this.tail = next.catch(() => undefined);
    return next;
  }
}

const CONFIG_LIMIT = 8 << 20;

interface LayerPlan {
  layer: Descriptor;
  diffId: string;
  short: string;
}

function parseConfig(bytes: Buffer, shown: string, layerCount: number): ImageConfigJson {
  let config: ImageConfigJson;
  try {
    config = JSON.parse(bytes.toString("utf8")) as ImageConfigJson;
  } catch {
    throw new InvalidError(`image config of ${shown} is not JSON`);
  }
  const diffIds = config?.rootfs?.diff_ids;
  if (!Array.isArray(diffIds)) throw new InvalidError(`image config of ${shown} has no rootfs.diff_ids`);
  diffIds.forEach((d, i) => assertDigest(d, `image config of ${shown} rootfs.diff_ids[${i}]`));
  if (diffIds.length !== layerCount) {
    throw new InvalidError(`${shown}: manifest has ${layerCount} layers but the config lists ${diffIds.length} diff_ids`);
  }
  return config;
}

/** Resolves index → platform manifest (one level of nesting allowed, as OCI permits). */
async function resolveManifest(deps: PullDeps, ref: ImageReference, top: FetchedManifest, platform: Platform, ctx: RequestContext) {
  const shown = familiarReference(ref);
  let current = top;
  const fetched = [top];
  for (let depth = 0; current.index; depth++) {
    if (depth === 2) throw new InvalidError(`${shown}: image indexes nested too deeply`);
    const desc = pickManifest(current.index.manifests, platform);
    if (!desc) throw new NoMatchingManifestError(shown, formatPlatform(platform));
    current = await deps.client.getManifest(ref, desc.digest, ctx);
    fetched.push(current);
  }
  return { manifest: current.manifest!, manifestDigest: current.digest, manifestMediaType: current.mediaType, fetched };
}

/**
 * The manifest of `ref` from the first of its sources that has it (pullSources: the mirrors,
 * then Docker Hub, for Docker Hub images). A mirror that fails is reported and skipped, as
 * Docker does; the last source's error is the pull's.
 */
async function resolveFromSources(deps: PullDeps, ref: ImageReference, platform: Platform, ctx: RequestContext, emit: ProgressListener) {
  const sources = pullSources(ref.domain, deps.mirrors);
  for (let i = 0; ; i++) {
    const source: ImageReference = { ...ref, domain: sources[i]! };
    try {
      await deps.client.ping(source.domain, ctx);
      const top = await deps.client.getManifest(source, ref.digest ?? ref.tag!, ctx);
      return { source, top, resolved: await resolveManifest(deps, source, top, platform, ctx) };
    } catch (e) {
      if (i === sources.length - 1 || ctx.signal?.aborted) throw e;
      emit({ status: `mirror ${source.domain}: ${(e as Error).message}; trying ${sources[i + 1]}` });
    }
  }
}

/** Pulls `input` into the store. See the module comment for the order of things. */
export async function pull(deps: PullDeps, input: string, opts: PullOptions = {}): Promise<PullResult> {
  const ref = parseReference(input);
  const shown = familiarReference(ref);
  const emit: ProgressListener = opts.onProgress ?? (() => {});
  const platform = opts.platform ?? deps.platform;
  // One failing layer download stops its siblings instead of letting them run on.
  const abort = new AbortController();
  const signal = opts.signal ? AbortSignal.any([opts.signal, abort.signal]) : abort.signal;
  const ctx: RequestContext = { signal, credentials: opts.credentials };

  emit({ status: `Pulling from ${ref.path}`, id: ref.digest ?? ref.tag });
  // `source` is where the bytes come from (a mirror, for Docker Hub images); `ref` stays what
  // the image is recorded and tagged as.
  const { source, top, resolved } = await resolveFromSources(deps, ref, platform, ctx, emit);
  const { manifest, manifestDigest, manifestMediaType, fetched } = resolved;

  if (!CONFIG_TYPES.has(manifest.config.mediaType)) {
    throw new NotSupportedError(`${shown} is not a container image (config media type ${manifest.config.mediaType})`);
  }
  for (const layer of manifest.layers) {
    if (!LAYER_TYPES.has(layer.mediaType))
      throw new NotSupportedError(`${shown}: layer ${layer.digest} has unsupported media type ${layer.mediaType}`);
  }
  const id = manifest.config.digest;
  // A stored config saves a round trip; if it vanished meanwhile (a concurrent remove), fetch it.
  const configBytes = await deps.layers.readBlob(id).catch(() => deps.client.getBlobBytes(source, manifest.config, CONFIG_LIMIT, ctx));
  const config = parseConfig(configBytes, shown, manifest.layers.length);

  const plans: LayerPlan[] = manifest.layers.map((layer, i) => ({
    layer,
    diffId: config.rootfs.diff_ids[i]!,
    short: shortId(layer.digest),
  }));
  // Pin before looking at what is present: a remove() that runs later then spares these layers,
  // and one that ran earlier has marked its victims in `deleting`, which the check below reads.
  for (const p of plans) deps.pins.set(p.diffId, (deps.pins.get(p.diffId) ?? 0) + 1);
  try {
    const todo: LayerPlan[] = [];
    const seen = new Set<string>();
    for (const p of plans) {
      if (seen.has(p.diffId)) continue; // The same layer twice in one image: fetch it once.
      seen.add(p.diffId);
      // A layer counts as here only if this very blob was stored for it before (and proven, or
      // being checked, to be it): trusting a config's diffID alone would let any image claim
      // another image's layers unseen. Unpacked or not: the unpacker makes what is missing.
      const known = deps.index.current.layers[p.diffId];
      if (
        !deps.deleting.has(p.diffId) &&
        (known?.digests.includes(p.layer.digest) || known?.unchecked?.includes(p.layer.digest)) &&
        ((await deps.layers.hasLayer(p.diffId)) || (await deps.layers.hasBlob(p.layer.digest)))
      ) {
        emit(layerStatus("Already exists", p.short));
      } else {
        emit(layerStatus("Pulling fs layer", p.short));
        todo.push(p);
      }
    }
    try {
      await runLimited(todo, deps.concurrency, (p) => fetchLayer(deps, source, p, ctx, emit));
    } catch (e) {
      abort.abort();
      throw e;
    }
    // Cancelled once the last bytes were in (small layers arrive whole, before a cancel can stop
    // their reads): nothing is recorded, as for a cancel mid-download.
    signal.throwIfAborted();

    // Blobs are (re)written under the commit lock, so a remove() running alongside cannot delete
    // them between their writing and the index naming them.
    const upToDate = await deps.commits.run(async () => {
      for (const m of fetched) await deps.layers.writeBlob(m.digest, m.bytes);
      await deps.layers.writeBlob(id, configBytes);
      return recordImage(deps.index, { ref, id, indexDigest: top.digest, manifestDigest, manifestMediaType, fetched, plans, config });
    });
    // The files are written after the pull returns; resolve() waits for what is not done yet.
    deps.unpacker.background(plans.map((p) => p.diffId));
    emit({ status: `Digest: ${top.digest}` });
    emit({ status: `Status: ${upToDate ? "Image is up to date" : "Downloaded newer image"} for ${shown}` });
    return { id, reference: shown, digest: top.digest, upToDate };
  } finally {
    for (const p of plans) {
      const n = (deps.pins.get(p.diffId) ?? 1) - 1;
      if (n <= 0) deps.pins.delete(p.diffId);
      else deps.pins.set(p.diffId, n);
    }
  }
}

interface Pulled {
  ref: ImageReference;
  id: string;
  /** Digest the reference resolved to: the index for multi-platform images. */
  indexDigest: string;
  manifestDigest: string;
  manifestMediaType: string;
  fetched: FetchedManifest[];
  plans: LayerPlan[];
  config: ImageConfigJson;
}

/** Records the image and moves its tag in one index update; true if the tag already pointed here. */
function recordImage(index: ImageIndex, p: Pulled): Promise<boolean> {
  const repoDigest = `${canonicalRepository(p.ref)}@${p.indexDigest}`;
  const tag = p.ref.digest ? undefined : canonicalReference(p.ref);
  return index.update((s) => {
    const prev = s.images[p.id];
    const already = tag ? s.tags[tag] === p.id : Boolean(prev?.repoDigests.includes(repoDigest));
    const now = new Date().toISOString();
    const record: ImageRecord = {
      id: p.id,
      repoDigests: [...new Set([...(prev?.repoDigests ?? []), repoDigest])],
      manifestDigest: p.manifestDigest,
      manifestMediaType: p.manifestMediaType,
      blobs: [...new Set([...(prev?.blobs ?? []), ...p.fetched.map((m) => m.digest), p.id])],
      layers: p.plans.map((l) => ({ digest: l.layer.digest, diffId: l.diffId, mediaType: l.layer.mediaType, size: l.layer.size })),
      size: [...new Set(p.plans.map((l) => l.diffId))].reduce((sum, d) => sum + (s.layers[d]?.size ?? 0), 0),
      created: p.config.created ?? "",
      os: p.config.os,
      architecture: p.config.architecture,
      ...(p.config.variant ? { variant: p.config.variant } : {}),
      pulledAt: prev?.pulledAt ?? now,
      ...(tag && !already ? { lastTagTime: now } : prev?.lastTagTime ? { lastTagTime: prev.lastTagTime } : {}),
    };
    s.images[p.id] = record;
    if (tag) s.tags[tag] = p.id;
    return already;
  });
}

/**
 * Download (its digest checked) → record as unchecked, once per diffID even across pulls. The
 * content checks and the unpacking come after the pull (see unpacker.ts).
 */
async function fetchLayer(deps: PullDeps, ref: ImageReference, p: LayerPlan, ctx: RequestContext, emit: ProgressListener): Promise<void> {
  const running = deps.inflight.get(p.diffId);
  if (running) {
    emit(layerStatus("Waiting", p.short));
    await running;
    emit(layerStatus("Pull complete", p.short));
    return;
  }
  const work = (async () => {
    // A remove() may still be deleting an older copy of this layer; store it after that is gone.
    await deps.deleting.get(p.diffId);
    // A blob already here (a push, a load, another image's claim) is checked like a downloaded one.
    if (!(await deps.layers.hasBlob(p.layer.digest))) {
      const body = await deps.client.getBlob(ref, p.layer, ctx);
      const progress = throttled((current, total) => emit(byteProgress("Downloading", p.short, current, total)));
      await deps.layers.ingest(p.layer.digest, body, (n) => progress(n, p.layer.size));
    }
    emit(layerStatus("Verifying Checksum", p.short));
    emit(layerStatus("Download complete", p.short));
    await deps.index.update((s) => {
      const rec = s.layers[p.diffId] ?? { size: 0, digests: [] };
      if (!rec.digests.includes(p.layer.digest) && !rec.unchecked?.includes(p.layer.digest)) {
        rec.unchecked = [...(rec.unchecked ?? []), p.layer.digest];
      }
      s.layers[p.diffId] = rec;
    });
    // The compressed blob is kept: the unpacker reads it, and push and save need the exact bytes
    // the manifest names, which re-packing the directory could not reproduce.
    emit(layerStatus("Pull complete", p.short));
  })();
  deps.inflight.set(p.diffId, work);
  try {
    await work;
  } finally {
    deps.inflight.delete(p.diffId);
  }
}
