// Secrets and configs given to a service's tasks (`--secret`, `--config`): which stored value
// becomes which file in the container, owned by whom, with which mode. The rules are written once
// here for the API, ctl and the agent's dispatch body. The values themselves never appear in a
// spec: a reference names the value, dispatch fetches it on its way to the agent.
import { InvalidError, NotSupportedError } from "./errors";
import type { SecretKind } from "./secrets";
import { validateSecretName } from "./secrets";

/** A stored secret or config delivered to each task as a read-only file. */
export interface SecretReference {
  /** The secret's (config's) name. */
  readonly source: string;
  /** Absolute path of the file in the container (secrets: /run/secrets/SOURCE by default; configs: /SOURCE). */
  readonly target: string;
  /** Numeric owner and group of the file ("0" by default). */
  readonly uid: string;
  readonly gid: string;
  /** File mode bits (0o444 by default, as docker's). */
  readonly mode: number;
}

/** A reference as users write it: only the source is required; a relative target is a file name. */
export type SecretReferenceInput = Omit<SecretReference, "target" | "uid" | "gid" | "mode"> & {
  readonly target?: string;
  readonly uid?: string;
  readonly gid?: string;
  readonly mode?: number;
};

/** Where a secret's relative target lives, as in swarm. */
export const SECRETS_DIR = "/run/secrets";
export const DEFAULT_SECRET_MODE = 0o444;

const HELP = {
  secret: "use NAME or source=NAME[,target=FILE|/PATH][,uid=0][,gid=0][,mode=0444]",
  config: "use NAME or source=NAME[,target=/PATH][,uid=0][,gid=0][,mode=0444]",
} as const;

function fail(field: string, message: string, value?: unknown): never {
  throw new InvalidError(message, value === undefined ? { field } : { field, value });
}

/** The file's absolute path: a relative target goes under /run/secrets (secrets) or / (configs). */
function resolveTarget(kind: SecretKind, field: string, source: string, target: string | undefined): string {
  const t = target === undefined || target === "" ? source : target;
  if (typeof t !== "string") fail(field, `${kind} target must be a path (got ${JSON.stringify(t)})`, t);
  const path = t.startsWith("/") ? t : `${kind === "secret" ? SECRETS_DIR : ""}/${t}`;
  if (/[,:\\\0]/.test(path)) fail(field, `${kind} target ${JSON.stringify(t)} must not contain ',', ':' or '\\'`, t);
  const segs = path.split("/").slice(1);
  if (segs.some((s) => s === "" || s === "." || s === "..")) {
    fail(field, `${kind} target ${JSON.stringify(t)} must be a file path without empty, . or .. segments`, t);
  }
  return path;
}

function numericId(field: string, kind: SecretKind, what: "uid" | "gid", v: unknown): string {
  if (v === undefined || v === "") return "0";
  if (typeof v !== "string" || !/^\d{1,10}$/.test(v) || Number(v) > 0xfffffffe) {
    fail(field, `${kind} ${what} must be a numeric id (got ${JSON.stringify(v)})`, v);
  }
  return String(Number(v));
}

/** Checks one reference (field names like `secrets[1].target`); returns it with every default filled in. */
export function normalizeSecretReference(kind: SecretKind, r: unknown, at: string): SecretReference {
  if (typeof r !== "object" || r === null || Array.isArray(r)) fail(at, `${at} must be an object`);
  const raw = r as Partial<SecretReferenceInput>;
  let source: string;
  try {
    source = validateSecretName(kind, raw.source);
  } catch (e) {
    fail(`${at}.source`, (e as Error).message, raw.source);
  }
  const mode = raw.mode ?? DEFAULT_SECRET_MODE;
  if (typeof mode !== "number" || !Number.isInteger(mode) || mode < 0 || mode > 0o777) {
    fail(`${at}.mode`, `${kind} mode must be file permission bits from 0 to 0777 (got ${JSON.stringify(raw.mode)})`, raw.mode);
  }
  return {
    source,
    target: resolveTarget(kind, `${at}.target`, source, raw.target),
    uid: numericId(`${at}.uid`, kind, "uid", raw.uid),
    gid: numericId(`${at}.gid`, kind, "gid", raw.gid),
    mode,
  };
}

/** Checks a spec's list of secrets (or configs); `taken` holds the targets already used (shared across both lists). */
export function normalizeSecretReferences(kind: SecretKind, list: unknown, taken = new Set<string>()): readonly SecretReference[] {
  const field = `${kind}s`;
  if (list === undefined) return [];
  if (!Array.isArray(list)) fail(field, `${field} must be a list`);
  return list.map((r, i) => {
    const ref = normalizeSecretReference(kind, r, `${field}[${i}]`);
    if (taken.has(ref.target)) fail(`${field}[${i}].target`, `${kind} target ${ref.target} is used twice`, ref.target);
    taken.add(ref.target);
    return ref;
  });
}

/**
 * Parses `--secret`/`--config` as docker does: a bare NAME, or comma-separated `key=value`
 * fields `source`/`src`, `target`, `uid`, `gid`, `mode` (octal). Unknown options are refused by name.
 */
export function parseSecretFlag(kind: SecretKind, input: string, flag = `--${kind}`): SecretReferenceInput {
  if (!input.includes("=")) {
    if (input.includes(",")) fail(flag, `invalid ${kind} ${JSON.stringify(input)}: ${HELP[kind]}`, input);
    return { source: input.trim() };
  }
  const out: { source?: string; target?: string; uid?: string; gid?: string; mode?: number } = {};
  for (const part of input.split(",")) {
    const eq = part.indexOf("=");
    if (eq <= 0) fail(flag, `invalid ${kind} ${JSON.stringify(input)}: ${HELP[kind]}`, input);
    const key = part.slice(0, eq).trim().toLowerCase();
    const value = part.slice(eq + 1).trim();
    if (key === "source" || key === "src") out.source = value;
    else if (key === "target") out.target = value;
    else if (key === "uid") out.uid = value;
    else if (key === "gid") out.gid = value;
    else if (key === "mode") {
      if (!/^[0-7]{1,4}$/.test(value)) fail(flag, `invalid ${kind} mode ${JSON.stringify(value)}: octal permission bits, e.g. 0400`, value);
      out.mode = parseInt(value, 8);
    } else throw new NotSupportedError(`${kind} option ${JSON.stringify(key)} is not supported (${HELP[kind]})`, { field: flag });
  }
  if (!out.source) fail(flag, `invalid ${kind} ${JSON.stringify(input)}: source is required (${HELP[kind]})`, input);
  return out as SecretReferenceInput;
}
