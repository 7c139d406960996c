// A stack file's secrets and configs → service references. The values are never in the file a
// stack sends: a top-level secret (config) must be `external` (created beforehand with
// `ctl secret create`), named by its key or its `name`. A service's `secrets` list names them
// (short `- NAME` or long `{source, target, uid, gid, mode}`). `mode` is taken as a quoted string
// of octal digits ("0440"): YAML 1.2 reads a plain 0440 as the decimal 440, which would silently
// give other permissions, so a number is refused.
import { InvalidError, NotSupportedError } from "../errors";
import type { SecretKind } from "../secrets";
import type { SecretReferenceInput } from "../service-secrets";

const TOP_KEYS = new Set(["external", "name"]);
const LONG_KEYS = new Set(["source", "target", "uid", "gid", "mode"]);

/** Top-level `secrets` (or `configs`): each declared key → the stored value's name. */
export function stackSecrets(kind: SecretKind, top: unknown): Map<string, string> {
  const names = new Map<string, string>();
  for (const [key, raw] of Object.entries((top ?? {}) as Record<string, Record<string, unknown> | null>)) {
    const at = `${kind}s.${key}`;
    const v = raw ?? {};
    for (const k of Object.keys(v)) {
      if (TOP_KEYS.has(k) || k.startsWith("x-")) continue;
      const why =
        k === "file" || k === "environment" || k === "content"
          ? `the value is not sent with a stack: create it with ctl ${kind} create ${key} FILE and declare it external: true`
          : "not supported";
      throw new NotSupportedError(`${at}.${k}: ${why}`, { field: `${at}.${k}` });
    }
    if (v.external !== true)
      throw new NotSupportedError(`${at}: declare it external: true (create it first with ctl ${kind} create ${key} FILE)`, { field: at });
    names.set(key, typeof v.name === "string" ? v.name : key);
  }
  return names;
}

function modeOf(v: unknown, at: string): number {
  if (typeof v === "string" && /^[0-7]{1,4}$/.test(v)) return parseInt(v, 8);
  throw new InvalidError(`${at}: write the mode as a quoted octal string such as "0440" (YAML reads a plain 0440 as the decimal 440)`, {
    field: at,
  });
}

/** A service's `secrets` (or `configs`) as references; each must be declared at the top level. */
export function secretRefsOf(
  kind: SecretKind,
  entries: unknown,
  declared: ReadonlyMap<string, string>,
  at: string,
): SecretReferenceInput[] {
  const list = entries === undefined || entries === null ? [] : (entries as unknown[]);
  return list.map((entry, i) => {
    const where = `${at}[${i}]`;
    const long = typeof entry === "string" ? { source: entry } : ((entry ?? {}) as Record<string, unknown>);
    for (const k of Object.keys(long))
      if (!LONG_KEYS.has(k) && !k.startsWith("x-")) throw new NotSupportedError(`${where}.${k}: not supported`, { field: `${where}.${k}` });
    const key = long.source;
    if (typeof key !== "string" || !declared.has(key))
      throw new InvalidError(`${where}: ${kind} ${JSON.stringify(key)} is not declared in the top-level ${kind}s`, { field: where });
    return {
      source: declared.get(key)!,
      // Without a target the file is named after the key, as docker stack does.
      target: typeof long.target === "string" ? long.target : kind === "secret" ? key : `/${key}`,
      ...(long.uid !== undefined ? { uid: String(long.uid) } : {}),
      ...(long.gid !== undefined ? { gid: String(long.gid) } : {}),
      ...(long.mode !== undefined ? { mode: modeOf(long.mode, `${where}.mode`) } : {}),
    };
  });
}
