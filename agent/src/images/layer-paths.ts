/**
 * What a layer entry's name means, before anything touches the disk: a normal entry, an OCI
 * whiteout (`.wh.<name>` hides `<name>` of lower layers), an opaque marker (`.wh..wh..opq`
 * hides everything of lower layers in its directory), or something to skip. Also the path
 * sanitising that keeps every entry inside the layer directory. Pure: no I/O.
 */
import { posix } from "node:path";

export const WHITEOUT_PREFIX = ".wh.";
export const OPAQUE_MARKER = ".wh..wh..opq";

export type EntryMeaning =
  | { kind: "entry"; path: string }
  | { kind: "whiteout"; path: string }
  | { kind: "opaque"; dir: string }
  | { kind: "skip"; path: string; reason: string };

export class PathEscapeError extends Error {}

/**
 * Normalises an archive name to a path relative to the layer root ("" is the root itself).
 * Leading `/` and `./` are dropped (archives written from `/` or `.` are both common);
 * `a/../b` becomes `b`, as Docker does; anything that still climbs above the root is refused.
 */
export function normalizeEntryPath(name: string): string {
  if (name.includes("\0")) throw new PathEscapeError(`NUL byte in path ${JSON.stringify(name)}`);
  const normal = posix.normalize(`/${name}`);
  // Normalising an absolute path clamps `..` at `/`; compare with a relative normalisation to
  // notice when the archive tried to climb out.
  const relative = posix.normalize(name.replace(/^\/+/, "") || ".");
  if (relative === ".." || relative.startsWith("../")) throw new PathEscapeError(`path escapes the layer root: ${name}`);
  return normal === "/" ? "" : normal.slice(1).replace(/\/$/, "");
}

/** Classifies a normalised entry path. Whiteout and opaque results name the affected path. */
export function classifyEntry(path: string): EntryMeaning {
  // Anything inside AUFS metadata dirs (`.wh..wh.plnk/…`) means nothing here either.
  if (ancestors(path).some((a) => posix.basename(a).startsWith(`${WHITEOUT_PREFIX}${WHITEOUT_PREFIX}`))) {
    return { kind: "skip", path, reason: "AUFS metadata" };
  }
  const base = posix.basename(path);
  if (!base.startsWith(WHITEOUT_PREFIX)) return { kind: "entry", path };
  const dir = posix.dirname(path) === "." ? "" : posix.dirname(path);
  if (base === OPAQUE_MARKER) return { kind: "opaque", dir };
  // Other `.wh..wh.` names are AUFS metadata (`.wh..wh.plnk`, `.wh..wh.aufs`); they mean nothing here.
  if (base.startsWith(`${WHITEOUT_PREFIX}${WHITEOUT_PREFIX}`)) return { kind: "skip", path, reason: "AUFS metadata" };
  const name = base.slice(WHITEOUT_PREFIX.length);
  if (name === "" || name === "." || name === "..") return { kind: "skip", path, reason: "whiteout without a name" };
  return { kind: "whiteout", path: dir ? `${dir}/${name}` : name };
}

/** The proper ancestors of a normalised path, outermost first: `a/b/c` → [`a`, `a/b`]. */
export function ancestors(path: string): string[] {
  const parts = path.split("/");
  const out: string[] = [];
  for (let i = 1; i < parts.length; i++) out.push(parts.slice(0, i).join("/"));
  return out;
}

/** xattrs a layer may not set: overlay's own (`trusted.overlay.*`) would let an image forge
 * whiteouts, opaque dirs or redirects; only the usual namespaces are carried over. */
export function isAllowedLayerXattr(name: string): boolean {
  if (name.startsWith("trusted.overlay.") || name.startsWith("user.overlay.")) return false;
  return name.startsWith("security.") || name.startsWith("user.") || name.startsWith("trusted.");
}
