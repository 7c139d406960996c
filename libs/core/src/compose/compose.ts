// A Compose file → the service specs of a stack (`ctl stack deploy -c compose.yml NAME`). Pure:
// the caller reads the files and the environment. Steps: YAML → variables (.env, then the
// environment, which wins) interpolated → the compose-spec schema (unknown keys named by path) →
// what Flotilla's services do not have yet refused by path → one ServiceSpec per service, named
// `STACK_SERVICE` and labelled `com.docker.stack.namespace=STACK`, as `docker stack deploy` does.
import { parseDocument } from "yaml";
import { InvalidError, NotSupportedError } from "../errors";
import { parseDuration } from "../parsers";
import { normalizeServiceSpec, validateServiceName } from "../spec-validation";
import type { ServiceSpec } from "../types";
import { commandOf, dictOf, listOf, placementOf, portOf, resourcesOf, restartOf, updateOf, wholeNumber } from "./compose-fields";
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
