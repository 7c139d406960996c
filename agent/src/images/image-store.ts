/**
 * The agent's image store: pull from registries, list, inspect, tag, remove, and resolve an
 * image to the lowerdirs of its overlay rootfs. See README.md in this folder for the layout on
 * disk and the flow of a pull.
 */
import { join } from "node:path";
import { InvalidError, NotFoundError, parseRegistryMirror } from "@flotilla/core";
import { toImageInspect, toImageSummary, type ImageInspect, type ImageSummary } from "./docker-shapes";
import { ImageNotFoundError } from "./errors";
import { findImage, ImageIndex, parentIds, tagsOf, type ImageRecord, type LayerRef } from "./image-index";
import { removeImage, type RemoveOptions, type RemoveResult } from "./image-removal";
import { LayerStore } from "./layer-store";
import { MediaType, type ContainerDefaults, type ImageConfigJson } from "./media-types";
import { sha256Of } from "./digest";
import { hostPlatform, normalizePlatform, type Platform } from "./platform";
import { pull, Serial, type PullDeps, type PullOptions, type PullResult } from "./pull";
import { canonicalReference, familiarize, parseReference } from "./reference";
import { login } from "./login";
import { push, type PushOptions, type PushResult } from "./push";
import { RegistryClient, type Credentials, type RegistryClientOptions } from "./registry-client";
import type { XattrTool } from "./special-files";
import { Unpacker } from "./unpacker";

export type { InUsePredicate, RemoveOptions, RemoveResult } from "./image-removal";
import type { InUsePredicate } from "./image-removal";

export interface ImageStoreOptions extends RegistryClientOptions {
  /** Directory owned by the store: blobs/, layers/, tmp/, images.json. */
  root: string;
  /** Platform to pull for; the host's by default. */
  platform?: Platform;
  /** Default in-use check for remove(); the agent wires its container list in here. */
  isInUse?: InUsePredicate;
  /** Layer downloads in parallel per pull (Docker's default: 3). */
  concurrentDownloads?: number;
  /** Force the xattr helper (tests); detected otherwise. */
  xattrTool?: XattrTool;
  /** Where failures of work done in the background (unpacking after a pull) are reported. */
  log?: (msg: string) => void;
  /** Docker Hub mirrors (URLs, docker's --registry-mirror), tried in order before Docker Hub. */
  registryMirrors?: readonly string[];
}

/** What the container runtime needs to start a container from an image. */
export interface ResolvedImage {
  id: string;
  /** The image's run defaults (Cmd, Entrypoint, Env, WorkingDir, User, ExposedPorts, Labels…). */
  config: ContainerDefaults;
  os: string;
  architecture: string;
  /** Unpacked layer directories, topmost first: `lowerdir=${lowerDirs.join(":")}`. */
  lowerDirs: string[];
  /** Familiar tags, e.g. `busybox:latest`. */
  repoTags: string[];
}

export class ImageStore {
  private readonly configs = new Map<string, ImageConfigJson>();

  private constructor(
    private readonly opts: ImageStoreOptions,
    private readonly layers: LayerStore,
    private readonly index: ImageIndex,
    private readonly deps: PullDeps,
  ) {}

  /** Opens (creating if needed) the store under `options.root`. */
  static async open(options: ImageStoreOptions): Promise<ImageStore> {
    const layers = new LayerStore(options.root, options.xattrTool);
    await layers.init();
    const index = await ImageIndex.load(join(options.root, "images.json"));
    const deleting = new Map<string, Promise<void>>();
    const mirrors = (options.registryMirrors ?? []).map(parseRegistryMirror);
    // An http:// mirror is spoken to over plain HTTP because its URL says so (Docker's rule).
    const insecureRegistries = [...(options.insecureRegistries ?? []), ...mirrors.filter((m) => m.insecure).map((m) => m.domain)];
    const deps: PullDeps = {
      client: new RegistryClient({ ...options, insecureRegistries }),
      mirrors,
      layers,
      index,
      platform: normalizePlatform(options.platform ?? hostPlatform()),
      concurrency: Math.max(1, options.concurrentDownloads ?? 3),
      pins: new Map(),
      inflight: new Map(),
      deleting,
      commits: new Serial(),
      unpacker: new Unpacker(layers, index, deleting, options.log),
    };
    const store = new ImageStore(options, layers, index, deps);
    // Layers of images a previous run stored but did not get to check or unpack (it stopped after a
    // pull); those of a pull that never finished wait for a pull that does, or for collection.
    const missing: string[] = [];
    const used = new Set(Object.values(index.current.images).flatMap((r) => r.layers.map((l) => l.diffId)));
    for (const [diffId, rec] of Object.entries(index.current.layers)) {
      if (used.has(diffId) && (rec.unchecked?.length || !(await layers.hasLayer(diffId)))) missing.push(diffId);
    }
    deps.unpacker.background(missing);
    return store;
  }

  /**
   * Pulls `reference` (`busybox`, `127.0.0.1:5000/busybox:latest`, `repo@sha256:…`), calling
   * `onProgress` with Docker's progress messages. Errors: InvalidError (bad reference),
   * NotFoundError (manifest unknown, pull access denied, no manifest for our platform),
   * UnavailableError (registry unreachable, https refused), DigestMismatchError (corrupt data).
   */
  pull(reference: string, options: PullOptions = {}): Promise<PullResult> {
    return pull(this.deps, reference, options);
  }

  /**
   * GET /images/json: every image, newest first. Without `all`, intermediate images of builds
   * (untagged images that are another image's parent) are left out, as `docker images` does.
   */
  async list(opts: { all?: boolean } = {}): Promise<ImageSummary[]> {
    // Sizes come from the content checks a pull leaves running (see unpacker.ts).
    await this.deps.unpacker.checked(Object.keys(this.index.current.layers));
    const state = this.index.current;
    const parents = parentIds(state);
    const out: ImageSummary[] = [];
    for (const record of Object.values(state.images)) {
      const tags = tagsOf(state, record.id);
      if (!opts.all && parents.has(record.id) && tags.length === 0 && record.repoDigests.length === 0) continue;
      out.push(toImageSummary(record, await this.config(record), tags));
    }
    return out.sort((a, b) => b.Created - a.Created || a.Id.localeCompare(b.Id));
  }

  /** GET /images/{name}/json. ImageNotFoundError when nothing matches. */
  async inspect(nameOrId: string): Promise<ImageInspect> {
    await this.deps.unpacker.checked(this.find(nameOrId).record.layers.map((l) => l.diffId));
    const record = this.find(nameOrId).record; // again: the checks may have updated it
    const state = this.index.current;
    return toImageInspect(record, await this.config(record), tagsOf(state, record.id), this.lowerDirs(record));
  }

  /**
   * The image's ID, run defaults and overlay lowerdirs, checked to be on disk. A layer that
   * appears twice in the chain is given once (its topmost place), as overlayfs rejects repeats.
   */
  async resolve(nameOrId: string): Promise<ResolvedImage> {
    const record = this.find(nameOrId).record;
    const config = await this.config(record);
    // A pull returns before its layers are unpacked: wait for the unpacker (or unpack now).
    await Promise.all(
      [...new Set(record.layers.map((l) => l.diffId))].map(async (diffId) => {
        if (await this.layers.hasLayer(diffId)) return;
        await this.deps.unpacker.ensure(diffId).catch((e: unknown) => {
          throw e instanceof NotFoundError ? new NotFoundError("layer", diffId, { image: record.id }) : e;
        });
      }),
    );
    return {
      id: record.id,
      config: config.config ?? {},
      os: config.os,
      architecture: config.architecture,
      lowerDirs: this.lowerDirs(record),
      repoTags: tagsOf(this.index.current, record.id).map(familiarize),
    };
  }

  /** The image's config blob (run defaults, history, rootfs). */
  async imageConfig(nameOrId: string): Promise<ImageConfigJson> {
    return this.config(this.find(nameOrId).record);
  }

  /** The store's record of an image (layers, parent, digests). */
  record(nameOrId: string): ImageRecord {
    return this.find(nameOrId).record;
  }

  /** Canonical tags of an image. */
  tagsOf(id: string): string[] {
    return tagsOf(this.index.current, id);
  }

  /** Every image record (for save, prune, system df). */
  records(): ImageRecord[] {
    return Object.values(this.index.current.images);
  }

  /** Unpacked bytes of a layer as recorded. */
  layerSize(diffId: string): number {
    return this.index.current.layers[diffId]?.size ?? 0;
  }

  /** Resolves once no layer is being unpacked in the background (tests, shutdown). */
  settle(): Promise<void> {
    return this.deps.unpacker.idle();
  }

  /** The layer store, for code that reads or writes blobs directly (push, save, load). */
  get blobs(): LayerStore {
    return this.layers;
  }

  /**
   * Keeps layers from garbage collection while a build or load holds them without an image
   * yet; call the returned function when done.
   */
  pinLayers(diffIds: readonly string[]): () => void {
    for (const d of diffIds) this.deps.pins.set(d, (this.deps.pins.get(d) ?? 0) + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      for (const d of diffIds) {
        const n = (this.deps.pins.get(d) ?? 1) - 1;
        if (n <= 0) this.deps.pins.delete(d);
        else this.deps.pins.set(d, n);
      }
    };
  }

  /**
   * Stores a layer from its uncompressed tar (a build step's change, a loaded archive's layer)
   * and records it; the layer is pinned until `release` is called.
   */
  async addLayer(tar: AsyncIterable<Buffer>): Promise<{ ref: LayerRef; release: () => void }> {
    const stored = await this.layers.storeTar(tar, (diffId) => this.index.current.layers[diffId]?.digests.find((d) => d));
    const release = this.pinLayers([stored.diffId]);
    await this.index.update((s) => {
      const rec = s.layers[stored.diffId] ?? { size: stored.unpackedSize, digests: [] };
      if (!rec.digests.includes(stored.digest)) rec.digests.push(stored.digest);
      s.layers[stored.diffId] = rec;
    });
    return {
      ref: { digest: stored.digest, diffId: stored.diffId, mediaType: MediaType.dockerLayerGzip, size: stored.compressedSize },
      release,
    };
  }

  /** `docker push NAME`: see push.ts. */
  push(name: string, options: PushOptions = {}): Promise<PushResult> {
    return push(this, this.deps.client, name, options);
  }

  /** `docker login` (POST /auth): checks the credentials against the registry. See login.ts. */
  login(domain: string, credentials: Credentials): Promise<void> {
    return login(this.deps.client, domain, credentials);
  }

  /** After a push: the manifest as pushed, and the image's new repo digest. */
  async recordPush(id: string, repoDigest: string, manifestDigest: string, mediaType: string, manifest: Buffer): Promise<void> {
    await this.deps.commits.run(async () => {
      await this.layers.writeBlob(manifestDigest, manifest);
      await this.index.update((s) => {
        const r = s.images[id];
        if (!r) return;
        if (!r.repoDigests.includes(repoDigest)) r.repoDigests.push(repoDigest);
        if (!r.blobs.includes(manifestDigest)) r.blobs.push(manifestDigest);
        if (!r.manifestDigest) {
          r.manifestDigest = manifestDigest;
          r.manifestMediaType = mediaType;
        }
      });
    });
  }

  /** A cached build step's image, if it is still here. */
  cached(key: string): string | undefined {
    const id = this.index.current.buildCache?.[key];
    return id && this.index.current.images[id] ? id : undefined;
  }

  /**
   * Records an image made here (a build step, a loaded archive): its config blob, layers (already
   * added), parent, tags (canonical) and the build cache key that produced it. Returns the ID.
   */
  async commitImage(input: {
    config: ImageConfigJson;
    configBytes?: Buffer;
    layers: readonly LayerRef[];
    parent?: string;
    tags?: readonly string[];
    cacheKey?: string;
  }): Promise<string> {
    const bytes = input.configBytes ?? Buffer.from(JSON.stringify(input.config));
    const id = sha256Of(bytes);
    await this.deps.commits.run(async () => {
      await this.layers.writeBlob(id, bytes);
      await this.index.update((s) => {
        const now = new Date().toISOString();
        const prev = s.images[id];
        s.images[id] = prev ?? {
          id,
          repoDigests: [],
          manifestDigest: "",
          manifestMediaType: "",
          blobs: [id],
          layers: [...input.layers],
          size: [...new Set(input.layers.map((l) => l.diffId))].reduce((sum, d) => sum + (s.layers[d]?.size ?? 0), 0),
          created: input.config.created ?? "",
          os: input.config.os,
          architecture: input.config.architecture,
          pulledAt: now,
          ...(input.parent ? { parent: input.parent } : {}),
        };
        for (const t of input.tags ?? []) {
          s.tags[t] = id;
          s.images[id]!.lastTagTime = now;
        }
        if (input.cacheKey) s.buildCache = { ...(s.buildCache ?? {}), [input.cacheKey]: id };
      });
    });
    return id;
  }

  /** POST /images/{name}/tag: points `target` (a tag reference) at the image `source` names. */
  async tag(source: string, target: string): Promise<void> {
    const record = this.find(source).record;
    const ref = parseReference(target);
    if (ref.digest) throw new InvalidError(`refusing to create a tag with a digest reference: ${target}`, { field: "tag" });
    const name = canonicalReference(ref);
    await this.index.update((s) => {
      if (!s.images[record.id]) throw new ImageNotFoundError(source);
      s.tags[name] = record.id;
      s.images[record.id]!.lastTagTime = new Date().toISOString();
    });
  }

  /** DELETE /images/{name}: see image-removal.ts. ImageNotFoundError when nothing matches. */
  async remove(nameOrId: string, options: RemoveOptions = {}): Promise<RemoveResult[]> {
    return removeImage(
      { deps: this.deps, isInUse: this.opts.isInUse, forgetConfig: (id) => this.configs.delete(id) },
      this.find(nameOrId),
      options,
    );
  }

  private find(nameOrId: string) {
    const match = findImage(this.index.current, nameOrId);
    if (!match) throw new ImageNotFoundError(nameOrId);
    return match;
  }

  private lowerDirs(record: ImageRecord): string[] {
    const seen = new Set<string>();
    const out: string[] = [];
    for (const layer of [...record.layers].reverse()) {
      if (seen.has(layer.diffId)) continue;
      seen.add(layer.diffId);
      out.push(this.layers.layerPath(layer.diffId));
    }
    return out;
  }

  private async config(record: ImageRecord): Promise<ImageConfigJson> {
    let config = this.configs.get(record.id);
    if (!config) {
      config = JSON.parse((await this.layers.readBlob(record.id)).toString("utf8")) as ImageConfigJson;
      this.configs.set(record.id, config);
    }
    return config;
  }
}
