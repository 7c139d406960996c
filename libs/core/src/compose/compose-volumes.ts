// A stack file's volumes → service mounts, as `docker stack deploy` reads them: a service's
// `volumes` (short `SRC:DST[:ro]` or long `{type, source, target, read_only, tmpfs.size}`) name
// either a volume declared at the top level — called STACK_NAME on the nodes unless it is
// `external` or has its own `name` — or an absolute path of the node (a bind). Relative paths
// mean nothing on a remote node, and anonymous volumes would be lost with each task: refused.
import { InvalidError, NotSupportedError } from "../errors";
import { parseMemory } from "../parsers";
import type { MountInput } from "../types";

const TOP_VOLUME_KEYS = new Set(["external", "name", "driver"]);
const LONG_KEYS = new Set(["type", "source", "target", "read_only", "tmpfs", "volume", "bind"]);

function invalid(at: string, message: string): InvalidError {
  return new InvalidError(`${at}: ${message}`, { field: at });
}

/** Top-level `volumes`: each declared name → the volume's name on the nodes. */
export function stackVolumes(stack: string, top: unknown): Map<string, string> {
  const names = new Map<string, string>();
  for (const [key, raw] of Object.entries((top ?? {}) as Record<string, Record<string, unknown> | null>)) {
    const at = `volumes.${key}`;
    const v = raw ?? {};
    for (const k of Object.keys(v)) {
      if (!TOP_VOLUME_KEYS.has(k) && !k.startsWith("x-"))
        throw new NotSupportedError(`${at}.${k}: not supported (volumes are local to each node)`, { field: `${at}.${k}` });
    }
    if (v.driver !== undefined && v.driver !== "local")
      throw new NotSupportedError(`${at}.driver: volume driver ${JSON.stringify(v.driver)} is not supported: only local`, {
        field: `${at}.driver`,
      });
    const external = v.external === true || (typeof v.external === "object" && v.external !== null);
    names.set(key, typeof v.name === "string" ? v.name : external ? key : `${stack}_${key}`);
  }
  return names;
}

/** A service's `volumes` as mounts; named volumes must be declared at the top level. */
export function mountsOf(entries: unknown, volumes: ReadonlyMap<string, string>, at: string): MountInput[] {
  const list = entries === undefined || entries === null ? [] : (entries as unknown[]);
  return list.map((entry, i) => {
    const where = `${at}[${i}]`;
    return typeof entry === "string" ? shortMount(entry, volumes, where) : longMount(entry as Record<string, unknown>, volumes, where);
  });
}

function sourceOf(source: string, volumes: ReadonlyMap<string, string>, at: string): Pick<MountInput, "type" | "source"> {
  if (source.startsWith("/")) return { type: "bind", source };
  if (/^[.~]/.test(source))
    throw new NotSupportedError(`${at}: relative bind source ${JSON.stringify(source)}: use an absolute path of the nodes`, {
      field: at,
    });
  const name = volumes.get(source);
  if (name === undefined) throw invalid(at, `volume ${JSON.stringify(source)} is not declared in the top-level volumes`);
  return { type: "volume", source: name };
}

function shortMount(text: string, volumes: ReadonlyMap<string, string>, at: string): MountInput {
  const parts = text.split(":");
  if (parts.length === 1)
    throw new NotSupportedError(`${at}: anonymous volume ${JSON.stringify(text)}: name the volume (NAME:${text})`, { field: at });
  if (parts.length > 3) throw invalid(at, `invalid volume ${JSON.stringify(text)}: use SOURCE:TARGET[:ro]`);
  const [source, target, mode = "rw"] = parts as [string, string, string?];
  const modes = mode.split(",");
  for (const m of modes)
    if (!["ro", "rw", "z", "Z"].includes(m)) throw invalid(at, `invalid volume mode ${JSON.stringify(m)}: use ro or rw`);
  return { ...sourceOf(source, volumes, at), target, readOnly: modes.includes("ro") };
}

function longMount(v: Record<string, unknown>, volumes: ReadonlyMap<string, string>, at: string): MountInput {
  for (const k of Object.keys(v)) {
    if (!LONG_KEYS.has(k) && !k.startsWith("x-")) throw new NotSupportedError(`${at}.${k}: not supported`, { field: `${at}.${k}` });
  }
  for (const k of ["volume", "bind"] as const) {
    const opts = Object.keys((v[k] ?? {}) as object);
    if (opts.length) throw new NotSupportedError(`${at}.${k}.${opts[0]}: not supported`, { field: `${at}.${k}.${opts[0]}` });
  }
  const target = typeof v.target === "string" ? v.target : "";
  const readOnly = v.read_only === true;
  if (v.type === "tmpfs") {
    const size = (v.tmpfs as { size?: unknown } | undefined)?.size;
    const tmpfsSizeBytes = size === undefined ? undefined : parseMemory(typeof size === "number" ? size : String(size), `${at}.tmpfs.size`);
    return { type: "tmpfs", target, readOnly, ...(tmpfsSizeBytes !== undefined ? { tmpfsSizeBytes } : {}) };
  }
  if (v.type !== "volume" && v.type !== "bind")
    throw new NotSupportedError(`${at}.type: ${JSON.stringify(v.type)} is not supported: use volume, bind or tmpfs`, {
      field: `${at}.type`,
    });
  if (typeof v.source !== "string" || v.source === "")
    throw new NotSupportedError(`${at}.source: anonymous volumes are not supported: name the volume`, { field: `${at}.source` });
  const from = sourceOf(v.source, volumes, `${at}.source`);
  if (from.type !== v.type) throw invalid(`${at}.type`, `type ${String(v.type)} does not match the source ${JSON.stringify(v.source)}`);
  return { ...from, target, readOnly };
}
