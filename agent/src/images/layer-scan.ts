/**
 * Reads a layer tar without writing anything, for a pull that stores the blob and leaves the
 * unpacking for later (see unpacker.ts): it yields Docker's size of the layer, counted exactly as
 * applyLayer counts it, and refuses at pull time what the extractor would refuse later: names
 * escaping the root, a root that is not a directory, writes through a symlink or a file,
 * hardlinks to anything but a file of this same layer, and archives that are not tar.
 *
 * The extractor (layer-apply.ts) stays the authority: it checks everything again while it writes.
 * This scan follows the same rules over the same entry sequence, tracking what each path would
 * be, so a layer it accepts is one the extractor accepts too, and the other way round.
 */
import { LayerInvalidError } from "./errors";
import { classifyEntry, normalizeEntryPath } from "./layer-paths";
import { readTar, TarFormatError } from "./tar-reader";

export interface LayerScanResult {
  /** Bytes of regular-file content: what applyLayer reports as the layer's size. */
  size: number;
  entries: number;
}

type Kind = "dir" | "file" | "symlink" | "whiteout" | "special";

/** The parent of a normalised path ("" for a top-level name), without allocating arrays. */
function parentOf(path: string): string {
  const slash = path.lastIndexOf("/");
  return slash < 0 ? "" : path.slice(0, slash);
}

export async function scanLayer(source: AsyncIterable<Buffer>, layer: string): Promise<LayerScanResult> {
  const known = new Map<string, Kind>([["", "dir"]]);
  const invalid = (problem: string) => new LayerInvalidError(layer, problem);
  const result: LayerScanResult = { size: 0, entries: 0 };

  /** As applyLayer's ensureDir: every missing ancestor becomes a directory; a symlink or file refuses. */
  const ensureParents = (path: string, self: boolean) => {
    // Fast path: the parent is a directory we know, and so (by induction) are its ancestors.
    const parent = self ? path : parentOf(path);
    if (known.get(parent) === "dir") return;
    const parts = path.split("/");
    const upto = self ? parts.length : parts.length - 1;
    let dir = "";
    for (let i = 0; i < upto; i++) {
      dir = i === 0 ? parts[0]! : `${dir}/${parts[i]}`;
      const kind = known.get(dir);
      if (kind === "dir") continue;
      if (kind === undefined || kind === "whiteout") {
        known.set(dir, "dir");
        continue;
      }
      throw invalid(`${path}: ${dir} is a ${kind === "symlink" ? "symlink" : "non-directory"}; refusing to write through it`);
    }
  };

  /** As applyLayer's clear: a replaced directory takes what was below it along. */
  const replace = (path: string, next: Kind) => {
    const kind = known.get(path);
    if (kind === undefined || (kind === "dir" && next === "dir")) return;
    if (kind === "dir") {
      const under = `${path}/`;
      for (const key of [...known.keys()]) if (key.startsWith(under)) known.delete(key);
    }
    known.delete(path);
  };

  try {
    for await (const { entry } of readTar(source)) {
      result.entries++;
      let path: string;
      try {
        path = normalizeEntryPath(entry.path);
      } catch (e) {
        throw invalid((e as Error).message);
      }
      const meaning = classifyEntry(path);
      if (meaning.kind === "skip") continue;
      if (meaning.kind === "opaque") {
        ensureParents(meaning.dir, true);
        continue;
      }
      if (meaning.kind === "whiteout") {
        ensureParents(meaning.path, false);
        if (!known.has(meaning.path)) known.set(meaning.path, "whiteout");
        continue;
      }
      if (path === "" && entry.type !== "directory")
        throw invalid(`entry ${JSON.stringify(entry.path)} for the layer root is not a directory`);
      ensureParents(path, false);
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
        replace(path, kind);
        known.set(path, kind);
        continue;
      }
      let kind: Kind;
      switch (entry.type) {
        case "directory":
          kind = "dir";
          break;
        case "file":
          kind = "file";
          result.size += entry.size;
          break;
        case "symlink":
          kind = "symlink";
          break;
        case "char":
        case "block":
        case "fifo":
          kind = "special";
          break;
        default:
          continue; // skipped by the extractor too
      }
      replace(path, kind);
      known.set(path, kind);
    }
  } catch (e) {
    if (e instanceof TarFormatError) throw invalid(`not a valid tar archive: ${e.message}`);
    throw e;
  }
  return result;
}
