// A Compose file → the service specs of a stack (`ctl stack deploy -c compose.yml NAME`). Pure:
// the caller reads the files and the environment. Steps: YAML → variables (.env, then the
// environment, which wins) interpolated → the compose-spec schema (unknown keys named by path) →
// what Flotilla's services do not have yet refused by path → one ServiceSpec per service, named
// `STACK_SERVICE` and labelled `com.docker.stack.namespace=STACK`, as `docker stack deploy` does.
import { parseDocument } from "yaml";
import { InvalidError, NotSupportedError } from "../errors";
import { parseCpus, parseDuration, parseMemory, parsePort } from "../parsers";
import { normalizeServiceSpec, validateServiceName } from "../spec-validation";
import type {
  FailureAction,
  PortConfig,
  PortProtocol,
  RestartCondition,
  RestartPolicy,
  ServiceSpec,
  UpdateConfig,
  UpdateOrder,
} from "../types";
import { interpolate, parseEnvFile } from "./compose-interpolate";
import { validateComposeSchema } from "./compose-schema";
import { mountsOf, stackVolumes } from "./compose-volumes";
import { secretRefsOf, stackSecrets } from "./compose-secrets";
import { healthcheckOf } from "./compose-healthcheck";
import { networksOf, stackNetworks, withDefaultNetwork, type StackNetwork } from "./compose-networks";

/** The label that ties a service to its stack (Docker's). */
export const STACK_LABEL = "com.docker.stack.namespace";

/** What parseCompose needs besides the file. */
export interface ComposeInput {
  /** The compose file's text and its name for messages. */
  text: string;
  file?: string;
  /** The stack's name: services become STACK_SERVICE. */
  stack: string;
  /** The environment of the command (wins over .env). */
  env?: Readonly<Record<string, string | undefined>>;
  /** Text of the `.env` beside the file, when there is one. */
  dotenv?: string;
  /** Text of each env_file the services name, by the path as written. */
  envFiles?: Readonly<Record<string, string>>;
}

/** A parsed stack: its name, its services' specs (sorted by name; networks named, not yet ids) and its networks. */
export interface ComposeStack {
  stack: string;
  services: ServiceSpec[];
  networks: StackNetwork[];
}

const SERVICE_KEYS = new Set([
  "image",
  "command",
  "entrypoint",
  "environment",
  "env_file",
  "ports",
  "labels",
  "deploy",
  "stop_grace_period",
  "volumes",
  "hostname",
  "user",
  "working_dir",
  "secrets",
  "configs",
  "healthcheck",
  "networks",
]);
/** Keys Flotilla will take once the services have them: refused with the reason. */
const NOT_YET: Record<string, string> = {
  build: "build is not supported: stacks run images from a registry",
  restart: "restart is not used by stacks: use deploy.restart_policy",
};
const DEPLOY_KEYS = new Set([
  "mode",
  "replicas",
  "labels",
  "resources",
  "placement",
  "update_config",
  "rollback_config",
  "restart_policy",
  "endpoint_mode",
]);
const TOP_KEYS = new Set(["version", "name", "services", "volumes", "secrets", "configs", "networks"]);

/** Parses and translates a compose file; every refusal is an InvalidError/NotSupportedError naming the path. */
export function parseCompose(input: ComposeInput): ComposeStack {
  const file = input.file ?? "compose file";
  const stack = validateServiceName(input.stack);
  const doc = parseDocument(input.text, { uniqueKeys: true, merge: true });
  if (doc.errors.length) {
    const e = doc.errors[0]!;
    throw new InvalidError(`${file}: ${e.message.split("\n")[0]}`, { field: file });
  }
  const raw = doc.toJS({ maxAliasCount: 100 }) as unknown;
  if (raw === null || typeof raw !== "object" || Array.isArray(raw))
    throw new InvalidError(`${file}: the top level must be a mapping with services`, { field: file });
  const vars: Record<string, string> = { ...(input.dotenv ? parseEnvFile(input.dotenv, ".env") : {}) };
  for (const [k, v] of Object.entries(input.env ?? {})) if (v !== undefined) vars[k] = v;
  const data = interpolate(raw, vars) as Record<string, unknown>;
  validateComposeSchema(data);
  for (const key of Object.keys(data)) {
    if (TOP_KEYS.has(key) || key.startsWith("x-")) continue;
    const empty = data[key] === null || (typeof data[key] === "object" && Object.keys(data[key] as object).length === 0);
    if (!empty) throw new NotSupportedError(`${key}: ${NOT_YET[key] ?? `top-level ${key} is not supported`}`, { field: key });
  }
  const services = (data.services ?? {}) as Record<string, Record<string, unknown>>;
  if (!Object.keys(services).length) throw new InvalidError(`${file}: no services`, { field: "services" });
  const declared: Declared = {
    volumes: stackVolumes(stack, data.volumes),
    secrets: stackSecrets("secret", data.secrets),
    configs: stackSecrets("config", data.configs),
    networks: withDefaultNetwork(stack, stackNetworks(stack, data.networks), services),
  };
  const specs = Object.entries(services).map(([name, svc]) => toServiceSpec(stack, name, svc ?? {}, vars, input.envFiles ?? {}, declared));
  return { stack, services: specs.sort((a, b) => a.name.localeCompare(b.name)), networks: [...declared.networks.values()] };
}

function toServiceSpec(
  stack: string,
  name: string,
  svc: Record<string, unknown>,
  vars: Record<string, string>,
  envFiles: Readonly<Record<string, string>>,
  declared: Declared,
): ServiceSpec {
  const at = `services.${name}`;
  for (const key of Object.keys(svc)) {
    if (SERVICE_KEYS.has(key) || key.startsWith("x-")) continue;
    throw new NotSupportedError(`${at}.${key}: ${NOT_YET[key] ?? `${key} is not supported by stacks yet`}`, { field: `${at}.${key}` });
  }
  if (typeof svc.image !== "string" || !svc.image) throw new InvalidError(`${at}.image: an image is required`, { field: `${at}.image` });
  const deploy = (svc.deploy ?? {}) as Record<string, unknown>;
  for (const key of Object.keys(deploy)) {
    if (!DEPLOY_KEYS.has(key) && !key.startsWith("x-"))
      throw new NotSupportedError(`${at}.deploy.${key}: not supported yet`, { field: `${at}.deploy.${key}` });
  }
  const fullName = validateServiceName(`${stack}_${name}`);
  const env: Record<string, string> = {};
  for (const [i, path] of listOf(svc.env_file).entries()) {
    const p = typeof path === "string" ? path : String((path as { path: string }).path);
    const text = envFiles[p];
    if (text === undefined) {
      if (typeof path === "object" && (path as { required?: boolean }).required === false) continue;
      throw new InvalidError(`${at}.env_file[${i}]: ${p} not found`, { field: `${at}.env_file[${i}]` });
    }
    Object.assign(env, parseEnvFile(text, p));
  }
  for (const [k, v] of Object.entries(dictOf(svc.environment, `${at}.environment`))) {
    // `- NAME` without a value takes it from the environment, or is left out.
    const value = v ?? vars[k];
    if (value !== undefined) env[k] = value;
  }
  const labels: Record<string, string> = {};
  for (const [k, v] of Object.entries({ ...dictOf(svc.labels, `${at}.labels`), ...dictOf(deploy.labels, `${at}.deploy.labels`) }))
    labels[k] = v ?? "";
  labels[STACK_LABEL] = stack;
  const mode = deploy.mode ?? "replicated";
  if (mode !== "replicated" && mode !== "global")
    throw new NotSupportedError(`${at}.deploy.mode: ${String(mode)} is not supported: use replicated or global`, {
      field: `${at}.deploy.mode`,
    });
  if (mode === "global" && deploy.replicas !== undefined)
    throw new InvalidError(`${at}.deploy.replicas: a global service has no replica count`, { field: `${at}.deploy.replicas` });
  const replicas = deploy.replicas === undefined ? 1 : wholeNumber(deploy.replicas, `${at}.deploy.replicas`);
  try {
    return normalizeServiceSpec({
      name: fullName,
      image: svc.image,
      ...(svc.entrypoint !== undefined ? { command: commandOf(svc.entrypoint, `${at}.entrypoint`) } : {}),
      ...(svc.command !== undefined ? { args: commandOf(svc.command, `${at}.command`) } : {}),
      env,
      labels,
      mode: mode === "global" ? { kind: "global" } : { kind: "replicated", replicas },
      resources: resourcesOf(deploy.resources as Record<string, Record<string, unknown>> | undefined, `${at}.deploy.resources`),
      ports: listOf(svc.ports).map((p, i) => portOf(p, `${at}.ports[${i}]`)),
      mounts: mountsOf(svc.volumes, declared.volumes, `${at}.volumes`),
      secrets: secretRefsOf("secret", svc.secrets, declared.secrets, `${at}.secrets`),
      configs: secretRefsOf("config", svc.configs, declared.configs, `${at}.configs`),
      // As docker stack deploy: a service that names no network joins the stack's default one.
      networks: networksOf(svc.networks === undefined ? ["default"] : svc.networks, declared.networks, `${at}.networks`, name),
      ...(deploy.endpoint_mode !== undefined ? { endpointMode: deploy.endpoint_mode as "vip" | "dnsrr" } : {}),
      ...(svc.healthcheck !== undefined ? { healthcheck: healthcheckOf(svc.healthcheck, `${at}.healthcheck`) } : {}),
      ...(svc.hostname !== undefined ? { hostname: String(svc.hostname) } : {}),
      ...(svc.user !== undefined ? { user: String(svc.user) } : {}),
      ...(svc.working_dir !== undefined ? { workdir: String(svc.working_dir) } : {}),
      placement: placementOf(deploy.placement as Record<string, unknown> | undefined, `${at}.deploy.placement`),
      ...(deploy.restart_policy
        ? { restartPolicy: restartOf(deploy.restart_policy as Record<string, unknown>, `${at}.deploy.restart_policy`) }
        : {}),
      ...(deploy.update_config
        ? { updateConfig: updateOf(deploy.update_config as Record<string, unknown>, `${at}.deploy.update_config`) }
        : {}),
      ...(deploy.rollback_config
        ? { rollbackConfig: updateOf(deploy.rollback_config as Record<string, unknown>, `${at}.deploy.rollback_config`) }
        : {}),
      ...(svc.stop_grace_period !== undefined
        ? { stopGracePeriodMs: parseDuration(String(svc.stop_grace_period), `${at}.stop_grace_period`) }
        : {}),
    });
  } catch (e) {
    // Every message starts with the path: the parsers name their field only in the details, and
    // normalizeServiceSpec names its own (`updateConfig.order`) without the service.
    if (e instanceof InvalidError && !e.message.startsWith("services.")) {
      const field = String(e.details.field ?? "");
      const path = field.startsWith("services.") ? field : `${at}${field ? `.${field}` : ""}`;
      throw new InvalidError(`${path}: ${e.message}`, { ...e.details, field: path });
    }
    throw e;
  }
}

/** What the top level declares, by key: volumes' names on the nodes, secrets' and configs' stored names. */
interface Declared {
  volumes: ReadonlyMap<string, string>;
  secrets: ReadonlyMap<string, string>;
  configs: ReadonlyMap<string, string>;
  networks: ReadonlyMap<string, StackNetwork>;
}

function listOf(v: unknown): unknown[] {
  return v === undefined || v === null ? [] : Array.isArray(v) ? v : [v];
}

/** A list (`- K=V`, `- K`) or a mapping (`K: V`) → entries; a value null means "no value". */
function dictOf(v: unknown, at: string): Record<string, string | undefined> {
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

function wholeNumber(v: unknown, at: string): number {
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

function protocolOf(v: unknown, at: string): PortProtocol {
  if (v !== "tcp" && v !== "udp") throw new InvalidError(`${at}: protocol must be tcp or udp (got ${JSON.stringify(v)})`, { field: at });
  return v;
}

function resourcesOf(r: Record<string, Record<string, unknown>> | undefined, at: string) {
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
function placementOf(p: Record<string, unknown> | undefined, at: string) {
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

function restartOf(r: Record<string, unknown>, at: string): Partial<RestartPolicy> {
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

function updateOf(u: Record<string, unknown>, at: string): Partial<UpdateConfig> {
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

/**
 * What a compose file needs from where it is read (for the CLI, before sending it): the variables
 * it names (so only those of the environment are sent) and the env_file paths of its services.
 * A file that does not parse yields what could be found; parseCompose reports the error.
 */
export function composeReferences(
  text: string,
  env: Readonly<Record<string, string | undefined>> = {},
): { variables: string[]; envFiles: string[] } {
  // Sorted once at the end: the YAML walk below adds names too.
  const variables = new Set<string>();
  for (const m of text.matchAll(/\$\{?([A-Za-z_][A-Za-z0-9_]*)/g))
    if (!text.slice(Math.max(0, m.index - 1), m.index).endsWith("$")) variables.add(m[1]!);
  const envFiles = new Set<string>();
  try {
    const vars = Object.fromEntries(Object.entries(env).filter((e): e is [string, string] => e[1] !== undefined));
    const data = interpolate(parseDocument(text).toJS(), vars) as {
      services?: Record<string, { env_file?: unknown; environment?: unknown }>;
    } | null;
    for (const svc of Object.values(data?.services ?? {})) {
      for (const f of listOf(svc?.env_file)) envFiles.add(typeof f === "string" ? f : String((f as { path?: string }).path));
      // `environment: [NAME]` (or `NAME:` without a value) takes NAME from the environment.
      for (const [k, v] of Object.entries(dictOf(svc?.environment, "environment"))) if (v === undefined) variables.add(k);
    }
  } catch {
    // reported by parseCompose on the server
  }
  return { variables: [...variables].sort(), envFiles: [...envFiles] };
}
