/**
 * The store's catalogue, one JSON file (`images.json`): images by ID (the config digest) with
 * their manifest and layer chain, tags (canonical `repo:tag` → ID), and unpacked layers with
 * the compressed digests each was verified to come from. Written whole, atomically (temp file,
 * fsync, rename), one writer at a time; the files under blobs/ and layers/ are the data, this
 * is the truth about which of them belong to whom.
 */
import * as fs from "node:fs/promises";
import { dirname, join } from "node:path";
import { canonicalReference, canonicalRepository, parseReference } from "./reference";

export interface LayerRef {
  /** Digest of the blob as the registry serves it (compressed). */
  digest: string;
  /** Digest of the uncompressed tar; names the unpacked directory. */
  diffId: string;
  mediaType: string;
  /** Compressed size from the manifest. */
  size: number;
}

export interface ImageRecord {
  /** Config digest: `sha256:…`. */
  id: string;
  /** `docker.io/library/busybox@sha256:…` (the digest of what was pulled: index or manifest). */
  repoDigests: string[];
  manifestDigest: string;
  manifestMediaType: string;
  /** Metadata blobs this image needs (index, manifest, config), for garbage collection. */
  blobs: string[];
  /** Bottom layer first, as in the manifest. */
  layers: LayerRef[];
  /** Unpacked bytes of all layers. */
  size: number;
  /** From the config; "" when the image has none. */
  created: string;
  os: string;
  architecture: string;
  variant?: string;
  pulledAt: string;
  lastTagTime?: string;
  /** For images built here: the image of the previous build step (Docker's parent chain). */
  parent?: string;
}

export interface LayerRecord {
  /** Unpacked bytes (0 until one of its blobs was checked). */
  size: number;
  /** Compressed blob digests proven (by decompressing and hashing them) to yield this diffID. */
  digests: string[];
  /**
   * Blobs a pull stored for this diffID (their own digest checked) whose decompressed content is
   * not checked yet; the unpacker checks them after the pull (see unpacker.ts).
   */
  unchecked?: string[];
}

export interface IndexState {
  version: 1;
  images: Record<string, ImageRecord>;
  /** Canonical `docker.io/library/busybox:latest` → image ID. */
  tags: Record<string, string>;
  layers: Record<string, LayerRecord>;
  /** Build cache: step key (parent image + instruction + content) → the image it produced. */
  buildCache?: Record<string, string>;
}

export interface ImageMatch {
  record: ImageRecord;
  /** How the name matched: by ID (or ID prefix), by tag, or by repo digest. */
  via: "id" | "tag" | "digest";
  /** The canonical tag or repo digest that matched, for `via` tag/digest. */
  name?: string;
}

const FULL_ID = /^sha256:[a-f0-9]{64}$/;
const ID_PREFIX = /^(?:sha256:)?([a-f0-9]{1,64})$/;

export function emptyIndex(): IndexState {
  return { version: 1, images: {}, tags: {}, layers: {} };
}

/**
 * Finds an image the way the Docker daemon does: a full ID; then the name as a reference
 * (`busybox` means `busybox:latest`, `repo@sha256:…` a repo digest); then a unique ID prefix.
 * Pure.
 */
export function findImage(state: IndexState, nameOrId: string): ImageMatch | undefined {
  const s = nameOrId.trim();
  if (FULL_ID.test(s)) return state.images[s] ? { record: state.images[s], via: "id" } : undefined;
  let ref: ReturnType<typeof parseReference> | undefined;
  try {
    ref = parseReference(s);
  } catch {
    ref = undefined;
  }
  if (ref?.digest) {
    const name = `${canonicalRepository(ref)}@${ref.digest}`;
    const record = Object.values(state.images).find((r) => r.repoDigests.includes(name));
    if (record) return { record, via: "digest", name };
  } else if (ref) {
    const name = canonicalReference(ref);
    const id = state.tags[name];
    if (id && state.images[id]) return { record: state.images[id], via: "tag", name };
  }
  const prefix = ID_PREFIX.exec(s);
  if (prefix) {
    const hits = Object.keys(state.images).filter((id) => id.startsWith(`sha256:${prefix[1]}`));
    if (hits.length === 1) return { record: state.images[hits[0]!]!, via: "id" };
  }
  return undefined;
}

/** IDs of images some other image names as its parent. Pure. */
export function parentIds(state: IndexState): Set<string> {
  return new Set(Object.values(state.images).flatMap((r) => (r.parent ? [r.parent] : [])));
}

/** Canonical tags pointing at `id`, sorted. Pure. */
export function tagsOf(state: IndexState, id: string): string[] {
  return Object.entries(state.tags)
    .filter(([, target]) => target === id)
    .map(([tag]) => tag)
    .sort();
}

export class ImageIndex {
  private queue: Promise<unknown> = Promise.resolve();

  private constructor(
    private readonly file: string,
    private state: IndexState,
  ) {}

  /** Loads `file`, or starts empty when it does not exist yet. */
  static async load(file: string): Promise<ImageIndex> {
    try {
      const parsed = JSON.parse(await fs.readFile(file, "utf8")) as IndexState;
      if (parsed.version !== 1) throw new Error(`unknown image index version ${String(parsed.version)}`);
      return new ImageIndex(file, { ...emptyIndex(), ...parsed });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "ENOENT") return new ImageIndex(file, emptyIndex());
      throw new Error(`image index ${file}: ${(e as Error).message}`, { cause: e });
    }
  }

  /** The current state; treat as read-only (mutate through update). */
  get current(): Readonly<IndexState> {
    return this.state;
  }

  /**
   * Applies `change` to a copy and persists it; the in-memory state moves only once the file is
   * on disk. Updates run one at a time in call order.
   */
  update<T>(change: (draft: IndexState) => T): Promise<T> {
    const run = this.queue.then(async () => {
      const draft = structuredClone(this.state);
      const out = change(draft);
      await this.persist(draft);
      this.state = draft;
      return out;
    });
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async persist(state: IndexState): Promise<void> {
    const tmp = join(dirname(this.file), `.images.json.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`);
    const fh = await fs.open(tmp, "w", 0o600);
    try {
      await fh.writeFile(JSON.stringify(state, null, 1));
      await fh.sync();
    } finally {
      await fh.close();
    }
    await fs.rename(tmp, this.file);
  }
}
