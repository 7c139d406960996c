// A compose service's fields, each read into the part of a ServiceSpec it becomes (commands,
// ports, resources, placement, restart and update policies) or into plain lists and mappings.
// Every error names the field by its path in the file (`at`).
import { InvalidError, NotSupportedError } from "../errors";
import { parseCpus, parseDuration, parseMemory, parsePort } from "../parsers";
import type { FailureAction, PortConfig, PortProtocol, RestartCondition, RestartPolicy, UpdateConfig, UpdateOrder } from "../types";

/** A value or a list of values → the list; absent → empty. */
export function listOf(v: unknown): unknown[] {
  return v === undefined || v === null ? [] : Array.isArray(v) ? v : [v];
}

/** A list (`- K=V`, `- K`) or a mapping (`K: V`) → entries; a value null means "no value". */
export function dictOf(v: unknown, at: string): Record<string, string | undefined> {
  if (v === undefined || v === null) return {};
  const out: Record<string, string | undefined> = {};
  if (Array.isArray(v)) {
    for (const item of v) {
      const s = String(item);
      const eq = s.indexOf("=");
      if (eq === 0) throw new InvalidError(`${at}: invalid entry ${JSON.stringify(s)}`, { field: at });
      if (eq < 0) out[s] = undefined;
      else out[s.slice(0, eq)] = s.slice(eq + 1);
    }
    return out;
  }
  for (const [k, val] of Object.entries(v as Record<string, unknown>)) out[k] = val === null ? undefined : String(val);
  return out;
}

/** Compose's command forms: a list as is, a string split like a shell would (quotes, backslashes). */
export function commandOf(v: unknown, at: string): string[] {
  if (v === null) return [];
  if (Array.isArray(v)) return v.map(String);
  const text = String(v);
  const out: string[] = [];
  let cur = "";
  let has = false;
  let quote: '"' | "'" | null = null;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (quote) {
      if (c === quote) quote = null;
      else if (c === "\\" && quote === '"' && i + 1 < text.length) cur += text[++i];
      else cur += c;
    } else if (c === '"' || c === "'") {
      quote = c;
      has = true;
    } else if (c === "\\" && i + 1 < text.length) {
      cur += text[++i];
      has = true;
    } else if (/\s/.test(c)) {
      if (has || cur) out.push(cur);
      cur = "";
      has = false;
    } else cur += c;
  }
  if (quote) throw new InvalidError(`${at}: unterminated quote in ${JSON.stringify(text)}`, { field: at });
  if (has || cur) out.push(cur);
  return out;
}

export function wholeNumber(v: unknown, at: string): number {
  const n = typeof v === "string" && /^\d+$/.test(v) ? Number(v) : v;
  if (typeof n !== "number" || !Number.isSafeInteger(n) || n < 0)
    throw new InvalidError(`${at}: must be a whole number ≥ 0 (got ${JSON.stringify(v)})`, { field: at });
  return n;
}

/** `8080:80`, `8080:80/udp`, or the long form; a host IP, a range or no published port is refused. */
export function portOf(p: unknown, at: string): PortConfig {
  if (typeof p === "object" && p !== null) {
    const o = p as Record<string, unknown>;
    if (o.host_ip)
      throw new NotSupportedError(`${at}.host_ip: binding a published port to one address is not supported`, { field: `${at}.host_ip` });
    if (o.published === undefined)
      throw new NotSupportedError(`${at}.published: a published port is required (random ports are not supported)`, {
        field: `${at}.published`,
      });
    const mode = o.mode ?? "ingress";
    if (mode !== "ingress" && mode !== "host")
      throw new InvalidError(`${at}.mode: must be ingress or host (got ${JSON.stringify(mode)})`, { field: `${at}.mode` });
    return {
      published: parsePort(String(o.published), `${at}.published`),
      target: parsePort(String(o.target), `${at}.target`),
      protocol: protocolOf(o.protocol ?? "tcp", `${at}.protocol`),
      mode,
    };
  }
  const text = String(p);
  const m = /^(?:(.*):)?([^:/]+)(?:\/(\w+))?$/.exec(text);
  if (!m) throw new InvalidError(`${at}: invalid port ${JSON.stringify(text)}: use PUBLISHED:TARGET[/tcp|udp]`, { field: at });
  const [, left, target, proto] = m;
  if (left === undefined)
    throw new NotSupportedError(
      `${at}: ${JSON.stringify(text)} publishes no port: give PUBLISHED:TARGET (random ports are not supported)`,
      { field: at },
    );
  if (left.includes(":"))
    throw new NotSupportedError(`${at}: ${JSON.stringify(text)}: binding a published port to one address is not supported`, { field: at });
  if (left.includes("-") || target!.includes("-"))
    throw new NotSupportedError(`${at}: ${JSON.stringify(text)}: port ranges are not supported`, { field: at });
  return { published: parsePort(left, at), target: parsePort(target!, at), protocol: protocolOf(proto ?? "tcp", at), mode: "ingress" };
}

export function protocolOf(v: unknown, at: string): PortProtocol {
  if (v !== "tcp" && v !== "udp") throw new InvalidError(`${at}: protocol must be tcp or udp (got ${JSON.stringify(v)})`, { field: at });
  return v;
}

export function resourcesOf(r: Record<string, Record<string, unknown>> | undefined, at: string) {
  const amounts = (x: Record<string, unknown> | undefined, where: string, allowPids: boolean) => {
    const out: { nanoCpus?: number; memoryBytes?: number; pids?: number } = {};
    for (const key of Object.keys(x ?? {})) {
      if (!["cpus", "memory", ...(allowPids ? ["pids"] : [])].includes(key))
        throw new NotSupportedError(`${where}.${key}: not supported yet`, { field: `${where}.${key}` });
    }
    if (x?.cpus !== undefined) out.nanoCpus = parseCpus(String(x.cpus), `${where}.cpus`);
    if (x?.memory !== undefined) out.memoryBytes = parseMemory(String(x.memory), `${where}.memory`);
    if (x?.pids !== undefined) out.pids = wholeNumber(x.pids, `${where}.pids`);
    return out;
  };
  return { limits: amounts(r?.limits, `${at}.limits`, true), reservations: amounts(r?.reservations, `${at}.reservations`, false) };
}

/** Always with maxReplicasPerNode (0 = none), so dropping it from the file changes the spec. */
export function placementOf(p: Record<string, unknown> | undefined, at: string) {
  if (!p) return { maxReplicasPerNode: 0 };
  const prefs = listOf(p.preferences).map((x, i) => {
    const spread = (x as { spread?: unknown }).spread;
    if (typeof spread !== "string")
      throw new InvalidError(`${at}.preferences[${i}]: only spread preferences exist`, { field: `${at}.preferences[${i}]` });
    return { spread };
  });
  return {
    constraints: listOf(p.constraints).map(String),
    preferences: prefs,
    maxReplicasPerNode: p.max_replicas_per_node === undefined ? 0 : wholeNumber(p.max_replicas_per_node, `${at}.max_replicas_per_node`),
  };
}

export function restartOf(r: Record<string, unknown>, at: string): Partial<RestartPolicy> {
  const condition = r.condition ?? "any";
  if (condition !== "none" && condition !== "on-failure" && condition !== "any") {
    throw new InvalidError(`${at}.condition: must be none, on-failure or any (got ${JSON.stringify(condition)})`, {
      field: `${at}.condition`,
    });
  }
  return {
    condition: condition as RestartCondition,
    ...(r.delay !== undefined ? { delayMs: parseDuration(String(r.delay), `${at}.delay`) } : {}),
    ...(r.max_attempts !== undefined ? { maxAttempts: wholeNumber(r.max_attempts, `${at}.max_attempts`) } : {}),
    ...(r.window !== undefined ? { windowMs: parseDuration(String(r.window), `${at}.window`) } : {}),
  };
}

export function updateOf(u: Record<string, unknown>, at: string): Partial<UpdateConfig> {
  const action = u.failure_action;
  if (action !== undefined && action !== "pause" && action !== "continue" && action !== "rollback") {
    throw new InvalidError(`${at}.failure_action: must be pause, continue or rollback (got ${JSON.stringify(action)})`, {
      field: `${at}.failure_action`,
    });
  }
  const order = u.order;
  if (order !== undefined && order !== "stop-first" && order !== "start-first") {
    throw new InvalidError(`${at}.order: must be stop-first or start-first (got ${JSON.stringify(order)})`, { field: `${at}.order` });
  }
  return {
    ...(u.parallelism !== undefined ? { parallelism: wholeNumber(u.parallelism, `${at}.parallelism`) } : {}),
    ...(u.delay !== undefined ? { delayMs: parseDuration(String(u.delay), `${at}.delay`) } : {}),
    ...(u.monitor !== undefined ? { monitorMs: parseDuration(String(u.monitor), `${at}.monitor`) } : {}),
    ...(action !== undefined ? { failureAction: action as FailureAction } : {}),
    ...(u.max_failure_ratio !== undefined ? { maxFailureRatio: Number(u.max_failure_ratio) } : {}),
    ...(order !== undefined ? { order: order as UpdateOrder } : {}),
  };
}
