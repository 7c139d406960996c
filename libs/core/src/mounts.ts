// Mounts of a service's tasks: the rules written once for the API, ctl (`--mount`) and stack
// files. The agent checks what it receives again, but a bad mount must be refused when the
// service is created — not surface later as every task REJECTED on every node.
import { InvalidError, NotSupportedError } from "./errors";
import { parseMemory } from "./parsers";
import type { Mount, MountInput, MountType } from "./types";

/** Docker's volume name rule; the name becomes a directory on the node. */
const VOLUME_NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;
const MOUNT_TYPES: readonly MountType[] = ["volume", "bind", "tmpfs"];
export const MOUNT_HELP = "use type=volume|bind|tmpfs,source=NAME|PATH,target=/PATH[,readonly][,tmpfs-size=64m]";

function fail(field: string, message: string, value?: unknown): never {
  throw new InvalidError(message, value === undefined ? { field } : { field, value });
}

/**
 * An absolute path without `.`/`..` segments or the characters the Engine API's mount syntax
 * reserves (`,` `:` `\`): the same path on every node, whatever its current directory.
 */
function checkPath(field: string, path: unknown, what: string): string {
  if (typeof path !== "string" || !path.startsWith("/"))
    fail(field, `${what} must be an absolute path (got ${JSON.stringify(path)})`, path);
  if (/[,:\\\0]/.test(path)) fail(field, `${what} ${JSON.stringify(path)} must not contain ',', ':' or '\\'`, path);
  if (path.split("/").some((seg) => seg === "." || seg === ".."))
    fail(field, `${what} ${JSON.stringify(path)} must not contain . or ..`, path);
  return path.length > 1 ? path.replace(/\/+$/, "") : path;
}

/** Checks one mount (field names like `mounts[2].target`); returns it in its canonical form. */
export function validateMount(m: unknown, at: string): Mount {
  if (typeof m !== "object" || m === null || Array.isArray(m)) fail(at, `${at} must be an object`);
  const raw = m as Partial<Mount>;
  const type = raw.type;
  if (typeof type !== "string" || !(MOUNT_TYPES as readonly string[]).includes(type)) {
    fail(`${at}.type`, `mount type must be one of ${MOUNT_TYPES.join(", ")} (got ${JSON.stringify(type)})`, type);
  }
  const target = checkPath(`${at}.target`, raw.target, "mount target");
  if (target === "/") fail(`${at}.target`, "mount target cannot be /", raw.target);
  if (typeof raw.readOnly !== "boolean") fail(`${at}.readOnly`, `${at}.readOnly must be true or false`, raw.readOnly);
  if (type !== "tmpfs" && raw.tmpfsSizeBytes !== undefined) fail(`${at}.tmpfsSizeBytes`, `tmpfs-size applies to tmpfs mounts only`);
  if (type === "tmpfs") {
    if (raw.source !== undefined && raw.source !== "") fail(`${at}.source`, "a tmpfs mount has no source", raw.source);
    // The agent mounts every tmpfs read-write; refusing beats silently ignoring the flag.
    if (raw.readOnly) throw new NotSupportedError("a read-only tmpfs mount is not supported", { field: `${at}.readOnly` });
    const size = raw.tmpfsSizeBytes;
    if (size !== undefined && (typeof size !== "number" || !Number.isSafeInteger(size) || size <= 0)) {
      fail(`${at}.tmpfsSizeBytes`, `tmpfs size must be a whole number of bytes above 0 (got ${JSON.stringify(size)})`, size);
    }
    return { type, target, readOnly: false, ...(size !== undefined ? { tmpfsSizeBytes: size } : {}) };
  }
  if (type === "volume") {
    const name = raw.source;
    // An anonymous volume would be a new, empty one for every replacement task, and left behind.
    if (name === undefined || name === "") fail(`${at}.source`, "a volume mount needs a source: the volume's name", name);
    if (typeof name !== "string" || !VOLUME_NAME.test(name) || name.length > 255) {
      fail(
        `${at}.source`,
        `invalid volume name ${JSON.stringify(name)}: start with a letter or digit, then letters, digits, _ . or -`,
        name,
      );
    }
    return { type, source: name, target, readOnly: raw.readOnly };
  }
  const source = checkPath(`${at}.source`, raw.source, "bind source");
  return { type, source, target, readOnly: raw.readOnly };
}

/** Checks a spec's mounts: each one, and no two on the same target. */
export function validateMounts(mounts: unknown): readonly Mount[] {
  if (!Array.isArray(mounts)) fail("mounts", "mounts must be a list");
  const seen = new Set<string>();
  return mounts.map((m, i) => {
    const mount = validateMount(m, `mounts[${i}]`);
    if (seen.has(mount.target)) fail(`mounts[${i}].target`, `mount target ${mount.target} is used twice`, mount.target);
    seen.add(mount.target);
    return mount;
  });
}

/** User input → a mount with its defaults (read-write). Validation is `validateMounts`. */
export function normalizeMount(m: MountInput): Mount {
  return { ...m, readOnly: m.readOnly ?? false };
}

const BOOLEAN: Readonly<Record<string, boolean>> = { "": true, true: true, "1": true, false: false, "0": false };

/**
 * Parses `--mount` as docker does: comma-separated `key=value` fields, `type` (volume unless
 * given), `source`/`src`, `target`/`destination`/`dst`, `readonly`/`ro` (bare or =true/false),
 * `volume-driver=local`, `tmpfs-size`. Options the agent cannot honour are refused by name.
 */
export function parseMountFlag(input: string, field = "mount"): MountInput {
  let type: string = "volume";
  let source: string | undefined;
  let target: string | undefined;
  let readOnly = false;
  let tmpfsSizeBytes: number | undefined;
  for (const part of input.split(",")) {
    const eq = part.indexOf("=");
    const key = (eq < 0 ? part : part.slice(0, eq)).trim().toLowerCase();
    const value = eq < 0 ? "" : part.slice(eq + 1).trim();
    if (key === "") fail(field, `invalid mount ${JSON.stringify(input)}: ${MOUNT_HELP}`, input);
    if (key === "type") type = value;
    else if (key === "source" || key === "src") source = value;
    else if (key === "target" || key === "destination" || key === "dst") target = value;
    else if (key === "readonly" || key === "ro") {
      if (!(value.toLowerCase() in BOOLEAN)) fail(field, `invalid mount ${JSON.stringify(input)}: readonly must be true or false`, input);
      readOnly = BOOLEAN[value.toLowerCase()];
    } else if (key === "volume-driver") {
      if (value !== "local") throw new NotSupportedError(`volume driver ${JSON.stringify(value)} is not supported: only local`, { field });
    } else if (key === "tmpfs-size") tmpfsSizeBytes = parseMemory(value, field);
    else {
      throw new NotSupportedError(`mount option ${JSON.stringify(key)} is not supported (${MOUNT_HELP})`, { field, value: input });
    }
  }
  if (target === undefined) fail(field, `invalid mount ${JSON.stringify(input)}: target is required (${MOUNT_HELP})`, input);
  if (!(MOUNT_TYPES as readonly string[]).includes(type))
    fail(field, `mount type must be one of ${MOUNT_TYPES.join(", ")} (got ${JSON.stringify(type)})`, type);
  return {
    type: type as MountType,
    ...(source !== undefined ? { source } : {}),
    target,
    readOnly,
    ...(tmpfsSizeBytes !== undefined ? { tmpfsSizeBytes } : {}),
  };
}

/**
 * The bind sources of `next` that `current` does not already bind: what a change adds of the
 * node's filesystem. Only an admin may add one; an operator may still scale or update a
 * service an admin gave a bind mount.
 */
export function addedBindSources(
  current: { readonly mounts: readonly Mount[] } | undefined,
  next: { readonly mounts: readonly Mount[] },
): string[] {
  const had = new Set((current?.mounts ?? []).filter((m) => m.type === "bind").map((m) => `${m.source}\0${m.target}\0${m.readOnly}`));
  return next.mounts.filter((m) => m.type === "bind" && !had.has(`${m.source}\0${m.target}\0${m.readOnly}`)).map((m) => m.source!);
}
