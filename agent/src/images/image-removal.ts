/**
 * Removing images (DELETE /images/{name}) with Docker's rules, and collecting the layers and blobs
 * no image uses any more. Part of the image store (image-store.ts), which hands in its internals.
 */
import { familiarize } from "./reference";
import { ImageConflictError } from "./errors";
import { parentIds, tagsOf, type ImageMatch, type ImageRecord, type IndexState } from "./image-index";
import { shortId } from "./progress";
import type { PullDeps } from "./pull";

/** Answers whether a container uses the image (so it must not be deleted). */
export type InUsePredicate = (imageId: string) => boolean | Promise<boolean>;

export interface RemoveOptions {
  /** Docker's `rmi -f`: delete despite several names; untag (but keep) an image in use. */
  force?: boolean;
  /** Overrides the store's isInUse for this call. */
  isInUse?: InUsePredicate;
}

/** One line of DELETE /images/{name}'s answer. */
export type RemoveResult = { Untagged: string } | { Deleted: string };

/** What removal needs of the store. */
export interface RemovalDeps {
  readonly deps: PullDeps;
  /** The store's default in-use check. */
  readonly isInUse?: InUsePredicate;
  /** Drops the store's cached config of a deleted image. */
  readonly forgetConfig: (id: string) => void;
}

/**
 * DELETE /images/{name}, Docker's rules: removing one of several tags only untags; removing the
 * last name (or by ID) deletes the image and then every layer no image uses any more. An image
 * used by a container is a ConflictError, unless forced: then its names go and the image stays
 * for its containers. By ID, tags in several repositories need force too.
 */
export async function removeImage(store: RemovalDeps, match: ImageMatch, options: RemoveOptions): Promise<RemoveResult[]> {
  const { record } = match;
  const id = record.id;
  const state = store.deps.index.current;
  const tags = tagsOf(state, id);

  if (match.via === "tag" && tags.length > 1) return untag(store, match.name!);
  if (match.via === "digest" && tags.length + record.repoDigests.length > 1) return untag(store, match.name!);
  if (match.via === "id" && !options.force && new Set(tags.map((t) => t.slice(0, t.lastIndexOf(":")))).size > 1) {
    throw new ImageConflictError(
      `conflict: unable to delete ${shortId(id)} (must be forced) - image is referenced in multiple repositories`,
      { image: id },
    );
  }

  const isInUse = options.isInUse ?? store.isInUse;
  const inUse = isInUse ? await isInUse(id) : false;
  if (inUse && !options.force) {
    throw new ImageConflictError(
      match.via === "id"
        ? `conflict: unable to delete ${shortId(id)} (must be forced) - image is being used by a container`
        : `conflict: unable to remove repository reference "${familiarize(match.name!)}" (must force) - image ${shortId(id)} is being used by a container`,
      { image: id },
    );
  }
  const names = [...tags, ...record.repoDigests];
  const untagged: RemoveResult[] = names.map((n) => ({ Untagged: familiarize(n) }));
  if (inUse) {
    await store.deps.index.update((s) => {
      for (const t of tagsOf(s, id)) delete s.tags[t];
      if (s.images[id]) s.images[id]!.repoDigests = [];
    });
    return untagged;
  }

  const deleted: string[] = [];
  // Like dockerd, the untagged parents a build left behind go with their last child.
  for (let current: ImageRecord | undefined = record; current;) {
    const layers = await store.deps.commits.run(() => deleteImage(store, current!));
    deleted.push(current.id, ...layers);
    const parent: ImageRecord | undefined = current.parent ? store.deps.index.current.images[current.parent] : undefined;
    const state = store.deps.index.current;
    const orphan: boolean =
      !!parent && tagsOf(state, parent.id).length === 0 && parent.repoDigests.length === 0 && !parentIds(state).has(parent.id);
    current = orphan && !(isInUse ? await isInUse(parent!.id) : false) ? parent : undefined;
  }
  return [...untagged, ...deleted.map((d) => ({ Deleted: d }))];
}

/**
 * Drops the image from the index, then the layers and metadata blobs nothing uses any more.
 * Runs under the commit lock, so no pull records an image between our check and our delete.
 */
async function deleteImage(store: RemovalDeps, record: ImageRecord): Promise<string[]> {
  let finished!: () => void;
  const deletion = new Promise<void>((resolve) => (finished = resolve));
  let doomed: string[] = [];
  let doomedBlobs: string[] = [];
  let blobs = record.blobs;
  try {
    await store.deps.index.update((s) => {
      blobs = s.images[record.id]?.blobs ?? blobs; // a pull may have added some since
      for (const t of tagsOf(s, record.id)) delete s.tags[t];
      delete s.images[record.id];
      for (const [key, id] of Object.entries(s.buildCache ?? {})) if (id === record.id) delete s.buildCache![key];
      doomedBlobs = [];
      for (const d of Object.keys(s.layers)) doomedBlobs.push(...s.layers[d]!.digests, ...(s.layers[d]!.unchecked ?? []));
      doomed = collectLayers(store, s);
      const kept = new Set(Object.values(s.layers).flatMap((l) => [...l.digests, ...(l.unchecked ?? [])]));
      doomedBlobs = doomedBlobs.filter((b) => !kept.has(b));
      // Marked in the same synchronous step that decides, so no pull can see them as present.
      for (const d of doomed) store.deps.deleting.set(d, deletion);
    });
    for (const diffId of doomed) {
      await store.deps.unpacker.settled(diffId); // a check or unpacking that began before: let it end, then delete
      await store.deps.layers.removeLayer(diffId);
    }
    for (const blob of doomedBlobs) await store.deps.layers.removeBlob(blob);
  } finally {
    for (const d of doomed) store.deps.deleting.delete(d);
    finished();
  }
  const stillUsed = new Set(Object.values(store.deps.index.current.images).flatMap((r) => r.blobs));
  for (const blob of blobs) if (!stillUsed.has(blob)) await store.deps.layers.removeBlob(blob);
  store.forgetConfig(record.id);
  return doomed;
}

/** Drops layers no image uses and no pull in progress relies on; returns their diffIDs. */
function collectLayers(store: RemovalDeps, s: IndexState): string[] {
  const used = new Set(Object.values(s.images).flatMap((r) => r.layers.map((l) => l.diffId)));
  const doomed = Object.keys(s.layers).filter((d) => !used.has(d) && !store.deps.pins.has(d));
  for (const d of doomed) delete s.layers[d];
  return doomed;
}

async function untag(store: RemovalDeps, name: string): Promise<RemoveResult[]> {
  await store.deps.index.update((s) => {
    delete s.tags[name];
    for (const r of Object.values(s.images)) r.repoDigests = r.repoDigests.filter((d) => d !== name);
  });
  return [{ Untagged: familiarize(name) }];
}
