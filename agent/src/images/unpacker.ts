/**
 * The work a pull leaves for after it returns. A pull downloads each layer blob and checks its
 * digest, as `skopeo copy` does, and records it as *unchecked* for its diffID. Then, in the
 * background:
 *
 *   check   decompress the blob, hash it against the diffID, scan the tar (layer-scan.ts: its
 *           size, and refusal of what the extractor would refuse); a blob that passes becomes a
 *           proven one (LayerRecord.digests) and the layer gets its size; one that fails is
 *           dropped and its error kept for resolve() to report
 *   unpack  write the layer's files from a proven blob (layer-apply.ts, which checks everything
 *           again while it writes) into layers/<diffID>, by rename from tmp/
 *
 * Both start when the pull is recorded, side by side; resolve() (container create, run, build)
 * waits for the unpacking, or does it then (after a restart); list and inspect wait for the
 * checks, which give the sizes. One check per blob and one
 * unpacking per diffID at a time; a remove() that dooms a layer waits for its work to end before
 * deleting it, and no work starts on a layer being deleted.
 */
import { NotFoundError, NotSupportedError } from "@flotilla/core";
import { DigestMismatchError, LayerInvalidError } from "./errors";
import type { ImageIndex, IndexState } from "./image-index";
import type { LayerStore } from "./layer-store";

export class Unpacker {
  /** `${diffId} ${digest}` → its check in progress. */
  private readonly checks = new Map<string, Promise<void>>();
  /** diffID → its unpacking in progress. */
  private readonly running = new Map<string, Promise<void>>();
  private readonly workers = new Set<Promise<void>>();
  /** diffID → why its last check failed, for resolve() to say. */
  private readonly failures = new Map<string, Error>();

  constructor(
    private readonly layers: LayerStore,
    private readonly index: ImageIndex,
    /** diffID → its deletion in progress (shared with the pull and remove). */
    private readonly deleting: ReadonlyMap<string, Promise<void>>,
    private readonly log: (msg: string) => void = () => {},
  ) {}

  /** Runs `work` registered under `key` in `map` unless the layer is being deleted. */
  private track(map: Map<string, Promise<void>>, key: string, diffId: string, work: () => Promise<void>): Promise<void> {
    const running = map.get(key);
    if (running) return running;
    // Decided in the same synchronous step as the registration below, so a remove() either sees
    // this work (and waits for it) or has marked the layer first (and we refuse).
    if (this.deleting.has(diffId)) return Promise.reject(new NotFoundError("layer", diffId));
    const p = work();
    map.set(key, p);
    const forget = () => {
      if (map.get(key) === p) map.delete(key);
    };
    p.then(forget, forget);
    return p;
  }

  /** Proves (or drops) the unchecked blob `digest` of `diffId`. */
  check(diffId: string, digest: string): Promise<void> {
    return this.track(this.checks, `${diffId} ${digest}`, diffId, async () => {
      let size: number;
      try {
        ({ size } = await this.layers.verifyBlob(digest, diffId));
      } catch (e) {
        if (isContentError(e)) await this.reject(diffId, digest, e as Error);
        throw e;
      }
      await this.prove(diffId, digest, size);
    });
  }

  /** Records `digest` as proven to yield `diffId`, and the layer's (and its images') size. */
  private async prove(diffId: string, digest: string, size: number): Promise<void> {
    await this.index.update((s) => {
      const rec = s.layers[diffId];
      if (!rec) return; // removed meanwhile
      if (rec.unchecked) rec.unchecked = rec.unchecked.filter((d) => d !== digest);
      if (rec.unchecked?.length === 0) delete rec.unchecked;
      if (!rec.digests.includes(digest)) rec.digests.push(digest);
      rec.size = size;
      recomputeImageSizes(s, diffId);
    });
    this.failures.delete(diffId);
  }

  /** Drops a blob whose content failed its check; resolve() reports `why`. */
  private async reject(diffId: string, digest: string, why: Error): Promise<void> {
    this.failures.set(diffId, why);
    let claimed = false;
    await this.index.update((s) => {
      const rec = s.layers[diffId];
      if (rec?.unchecked) {
        rec.unchecked = rec.unchecked.filter((d) => d !== digest);
        if (rec.unchecked.length === 0) delete rec.unchecked;
      }
      claimed = Object.values(s.layers).some((l) => l.digests.includes(digest) || l.unchecked?.includes(digest));
    });
    // Not this diffID, or not a tar we accept: the blob is of no use unless another layer claims it.
    if (!claimed) await this.layers.removeBlob(digest);
  }

  /** Resolves once every check in progress or due for these layers has ended (either way). */
  async checked(diffIds: Iterable<string>): Promise<void> {
    const waits: Promise<void>[] = [];
    for (const diffId of new Set(diffIds)) {
      for (const digest of this.index.current.layers[diffId]?.unchecked ?? []) waits.push(this.check(diffId, digest).catch(() => {}));
    }
    await Promise.all(waits);
  }

  /**
   * Makes sure layers/<diffId> exists, unpacked from a proven blob or else from an unchecked one:
   * the unpacking checks the diffID itself (into tmp/, renamed only if it matches) and refuses
   * hostile entries as it writes, so it need not wait for the separate check.
   */
  ensure(diffId: string): Promise<void> {
    return this.track(this.running, diffId, diffId, async () => {
      if (await this.layers.hasLayer(diffId)) return;
      const rec = this.index.current.layers[diffId];
      for (const digest of rec?.digests ?? []) {
        if (!(await this.layers.hasBlob(digest))) continue;
        await this.layers.unpack(digest, diffId);
        return;
      }
      for (const digest of rec?.unchecked ?? []) {
        if (!(await this.layers.hasBlob(digest))) continue;
        let size: number;
        try {
          ({ size } = await this.layers.unpack(digest, diffId));
        } catch (e) {
          if (!isContentError(e)) throw e;
          await this.reject(diffId, digest, e as Error);
          continue;
        }
        await this.prove(diffId, digest, size);
        return;
      }
      throw this.failures.get(diffId) ?? new NotFoundError("layer", diffId);
    });
  }

  /**
   * Checks and unpacks `diffIds` in the background: every check at once (they are quick, and
   * give list and inspect their sizes), the unpackings in order, two at a time (one's
   * decompression runs on the thread pool while the other's files are written). Failures are
   * logged and left for resolve() to meet again, with the error in the caller's face.
   */
  background(diffIds: Iterable<string>): void {
    const todo = [...new Set(diffIds)];
    const report = (diffId: string) => (e: unknown) => this.log(`layer ${diffId}: ${(e as Error).message}`);
    for (const diffId of todo) {
      for (const digest of this.index.current.layers[diffId]?.unchecked ?? []) this.check(diffId, digest).catch(report(diffId));
    }
    let next = 0;
    const worker = async () => {
      while (next < todo.length) {
        const diffId = todo[next++]!;
        await this.ensure(diffId).catch(report(diffId));
      }
    };
    for (let i = 0; i < Math.min(2, todo.length); i++) {
      const w = worker();
      this.workers.add(w);
      void w.finally(() => this.workers.delete(w));
    }
  }

  /** Resolves once the work on `diffId` in progress, if any, has ended (either way). */
  async settled(diffId: string): Promise<void> {
    const mine = [...this.checks].filter(([k]) => k.startsWith(`${diffId} `)).map(([, p]) => p);
    const unpacking = this.running.get(diffId);
    await Promise.allSettled(unpacking ? [...mine, unpacking] : mine);
  }

  /** Resolves once no work is in progress (tests, shutdown). */
  async idle(): Promise<void> {
    while (this.running.size > 0 || this.checks.size > 0 || this.workers.size > 0) {
      await Promise.allSettled([...this.running.values(), ...this.checks.values(), ...this.workers]);
    }
  }
}

/**
 * Whether `e` says the blob's content is bad (not its diffID, not a tar or a compression we
 * accept; layer-store turns decompressors' complaints into LayerInvalidError), as opposed to
 * trouble on this host (a full disk, a vanished tmp/), after which the blob is kept for a retry.
 */
function isContentError(e: unknown): boolean {
  return e instanceof DigestMismatchError || e instanceof LayerInvalidError || e instanceof NotSupportedError;
}

/** Sets the size of every image using `diffId` again, from its layers' sizes. */
function recomputeImageSizes(s: IndexState, diffId: string): void {
  for (const image of Object.values(s.images)) {
    if (!image.layers.some((l) => l.diffId === diffId)) continue;
    image.size = [...new Set(image.layers.map((l) => l.diffId))].reduce((sum, d) => sum + (s.layers[d]?.size ?? 0), 0);
  }
}
