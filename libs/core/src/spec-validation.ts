// Defaults and validation of service specs. Validation checks types at run time as well, because
// specs arrive as JSON (request bodies, the `spec` column) and a wrong type must surface as an
// InvalidError naming the field, not as a crash deep inside the scheduler.
import { parseConstraint, spreadLabel } from "./constraints";
import { InvalidError } from "./errors";
import { DEFAULT_HEALTHCHECK, validateHealthcheck } from "./healthcheck";
import { isHostPort } from "./ingress";
import { normalizeMount, validateMounts } from "./mounts";
import { normalizeSecretReferences } from "./service-secrets";
import { validateNetworkAttachments } from "./overlay";
import type {
  Mount,
  NetworkAttachment,
  NetworkAttachmentInput,
  PortConfig,
  RestartPolicy,
  ServiceSpec,
  ServiceSpecInput,
  UpdateConfig,
} from "./types";

/** Docker's defaults: restart on any exit after 5 s, forever. */
export const DEFAULT_RESTART_POLICY: RestartPolicy = { condition: "any", delayMs: 5_000, maxAttempts: 0, windowMs: 0 };

/** Docker's defaults: one task at a time, watch each for 5 s, pause on the first failure. */
export const DEFAULT_UPDATE_CONFIG: UpdateConfig = {
  parallelism: 1,
  delayMs: 0,
  monitorMs: 5_000,
  failureAction: "pause",
  maxFailureRatio: 0,
  order: "stop-first",
};

export const DEFAULT_ROLLBACK_CONFIG: UpdateConfig = DEFAULT_UPDATE_CONFIG;
export const DEFAULT_STOP_GRACE_PERIOD_MS = 10_000;
/** An upper bound that catches typos (`--replicas 10000000`) long before memory runs out. */
export const MAX_REPLICAS = 100_000;

const SERVICE_NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;

function fail(field: string, message: string, value?: unknown): never {
  throw new InvalidError(message, value === undefined ? { field } : { field, value });
}

/**
 * Checks a service name against Docker's rules: starts with a letter or digit, then letters,
 * digits, `_`, `.` or `-`, at most 63 characters (it becomes part of DNS names and hostnames).
 */
export function validateServiceName(name: unknown): string {
  if (typeof name !== "string" || name === "") fail("name", "service name is required", name);
  if (name.length > 63) fail("name", `service name ${JSON.stringify(name)} is longer than 63 characters`, name);
  if (!SERVICE_NAME.test(name)) {
    fail("name", `invalid service name ${JSON.stringify(name)}: start with a letter or digit, then use letters, digits, _ . or -`, name);
  }
  return name;
}

function wholeNumber(field: string, v: unknown, what: string, max = Number.MAX_SAFE_INTEGER): number {
  if (typeof v !== "number" || !Number.isSafeInteger(v) || v < 0 || v > max) {
    const range = max === Number.MAX_SAFE_INTEGER ? "a whole number ≥ 0" : `a whole number from 0 to ${max}`;
    fail(field, `${what} must be ${range} (got ${JSON.stringify(v)})`, v);
  }
  return v;
}

function oneOf<T extends string>(field: string, v: unknown, allowed: readonly T[], what: string): T {
  if (typeof v !== "string" || !(allowed as readonly string[]).includes(v)) {
    fail(field, `${what} must be one of ${allowed.join(", ")} (got ${JSON.stringify(v)})`, v);
  }
  return v as T;
}

function stringList(field: string, v: unknown): void {
  if (!Array.isArray(v) || v.some((s) => typeof s !== "string")) fail(field, `${field} must be a list of strings`);
}

function stringMap(field: string, v: unknown, keyRule: (k: string) => string | undefined): void {
  if (typeof v !== "object" || v === null || Array.isArray(v)) fail(field, `${field} must be an object of strings`);
  for (const [k, val] of Object.entries(v)) {
    const problem = keyRule(k);
    if (problem) fail(`${field}.${k}`, problem, k);
    if (typeof val !== "string") fail(`${field}.${k}`, `${field}.${k} must be a string`, val);
  }
}

function validatePorts(ports: unknown): void {
  if (!Array.isArray(ports)) fail("ports", "ports must be a list");
  const seen = new Set<string>();
  (ports as PortConfig[]).forEach((p, i) => {
    const at = `ports[${i}]`;
    if (typeof p !== "object" || p === null) fail(at, `${at} must be an object`);
    for (const k of ["published", "target"] as const) {
      const v = p[k];
      if (typeof v !== "number" || !Number.isInteger(v) || v < 1 || v > 65535) {
        fail(`${at}.${k}`, `${k} port must be a number from 1 to 65535 (got ${JSON.stringify(v)})`, v);
      }
    }
    oneOf(`${at}.protocol`, p.protocol, ["tcp", "udp"], "protocol");
    oneOf(`${at}.mode`, p.mode, ["ingress", "host"], "publish mode");
    if (p.traffic !== undefined) {
      oneOf(`${at}.traffic`, p.traffic, ["cluster", "local"], "traffic");
      if (p.mode === "host")
        fail(`${at}.traffic`, `traffic applies to ingress ports only (port ${p.published} is in host mode)`, p.traffic);
    }
    // The mesh forwards TCP connections; UDP has no connection to forward.
    if (p.mode === "ingress" && p.protocol === "udp") {
      fail(`${at}.mode`, `udp port ${p.published} can only be published in host mode (mode=host)`, p.mode);
    }
    const key = `${p.published}/${p.protocol}`;
    if (seen.has(key)) fail(`${at}.published`, `port ${key} is published twice`, p.published);
    seen.add(key);
  });
}

function validateUpdateConfig(field: string, c: unknown, isRollback: boolean): void {
  if (typeof c !== "object" || c === null) fail(field, `${field} must be an object`);
  const u = c as UpdateConfig;
  wholeNumber(`${field}.parallelism`, u.parallelism, "parallelism");
  wholeNumber(`${field}.delayMs`, u.delayMs, "delay");
  wholeNumber(`${field}.monitorMs`, u.monitorMs, "monitor period");
  const actions = isRollback ? (["pause", "continue"] as const) : (["pause", "continue", "rollback"] as const);
  oneOf(`${field}.failureAction`, u.failureAction, actions, "failure action");
  const r = u.maxFailureRatio;
  if (typeof r !== "number" || !(r >= 0 && r <= 1)) {
    fail(`${field}.maxFailureRatio`, `max failure ratio must be a number from 0 to 1 (got ${JSON.stringify(r)})`, r);
  }
  oneOf(`${field}.order`, u.order, ["stop-first", "start-first"], "update order");
}

/**
 * Validates a complete spec. Throws InvalidError whose `details.field` is the path of the first
 * offending field (`mode.replicas`, `ports[1].published`, `placement.constraints[0]`);
 * returns the spec unchanged when valid.
 */
export function validateServiceSpec(spec: ServiceSpec): ServiceSpec {
  if (typeof spec !== "object" || spec === null) fail("spec", "service spec must be an object");
  validateServiceName(spec.name);
  if (typeof spec.image !== "string" || spec.image.trim() === "" || /\s/.test(spec.image)) {
    fail("image", `image must be a non-empty reference without spaces (got ${JSON.stringify(spec.image)})`, spec.image);
  }
  stringList("command", spec.command);
  stringList("args", spec.args);
  stringMap("env", spec.env, (k) =>
    k === "" || k.includes("=") || k.includes("\0") ? `invalid environment variable name ${JSON.stringify(k)}` : undefined,
  );
  stringMap("labels", spec.labels, (k) => (k.trim() === "" ? "label names must not be empty" : undefined));
  stringMap("containerLabels", spec.containerLabels, (k) => (k.trim() === "" ? "label names must not be empty" : undefined));
  // A DNS name (letters, digits, - and .), as docker takes; its {{.Task.Slot}} templates are not supported.
  if (typeof spec.hostname !== "string" || !/^(?:[a-zA-Z0-9](?:[a-zA-Z0-9.-]{0,62}))?$/.test(spec.hostname)) {
    fail(
      "hostname",
      `hostname must be up to 63 letters, digits, - or . starting with a letter or digit (got ${JSON.stringify(spec.hostname)})`,
      spec.hostname,
    );
  }
  if (typeof spec.user !== "string" || !/^(?:[^\s:]+(?::[^\s:]+)?)?$/.test(spec.user)) {
    fail("user", `user must be USER or USER:GROUP, names or ids (got ${JSON.stringify(spec.user)})`, spec.user);
  }
  if (typeof spec.workdir !== "string" || (spec.workdir !== "" && !spec.workdir.startsWith("/")) || spec.workdir.includes("\0")) {
    fail("workdir", `workdir must be an absolute path (got ${JSON.stringify(spec.workdir)})`, spec.workdir);
  }

  const mode = spec.mode as { kind?: unknown; replicas?: unknown } | undefined;
  if (mode?.kind === "replicated") wholeNumber("mode.replicas", mode.replicas, "replicas", MAX_REPLICAS);
  else if (mode?.kind !== "global") fail("mode", `mode must be replicated or global (got ${JSON.stringify(mode?.kind)})`);

  const res = spec.resources;
  if (typeof res !== "object" || res === null) fail("resources", "resources must be an object");
  for (const kind of ["reservations", "limits"] as const) {
    if (typeof res[kind] !== "object" || res[kind] === null) fail(`resources.${kind}`, `resources.${kind} must be an object`);
    wholeNumber(`resources.${kind}.nanoCpus`, res[kind].nanoCpus, `CPU ${kind}`);
    wholeNumber(`resources.${kind}.memoryBytes`, res[kind].memoryBytes, `memory ${kind}`);
  }
  if (res.limits.pids !== undefined) wholeNumber("resources.limits.pids", res.limits.pids, "pids limit");
  for (const k of ["nanoCpus", "memoryBytes"] as const) {
    const limit = res.limits[k];
    if (limit > 0 && res.reservations[k] > limit) {
      const what = k === "nanoCpus" ? "CPU" : "memory";
      fail(`resources.reservations.${k}`, `${what} reservation (${res.reservations[k]}) exceeds the limit (${limit})`);
    }
  }

  validatePorts(spec.ports);
  validateMounts(spec.mounts);
  // One file per target across secrets and configs; a mount on the same path would hide it.
  const targets = new Set<string>(spec.mounts.map((m) => m.target));
  normalizeSecretReferences("secret", spec.secrets, targets);
  normalizeSecretReferences("config", spec.configs, targets);
  validateHealthcheck(spec.healthcheck);

  const placement = spec.placement;
  if (typeof placement !== "object" || placement === null) fail("placement", "placement must be an object");
  stringList("placement.constraints", placement.constraints);
  placement.constraints.forEach((c, i) => parseConstraint(c, `placement.constraints[${i}]`));
  if (!Array.isArray(placement.preferences)) fail("placement.preferences", "placement.preferences must be a list");
  placement.preferences.forEach((p, i) => {
    const field = `placement.preferences[${i}]`;
    if (typeof p !== "object" || p === null || typeof p.spread !== "string") {
      fail(field, `${field} must be {spread: "node.labels.<name>"}`);
    }
    spreadLabel(p, field);
  });
  if (placement.maxReplicasPerNode !== undefined) {
    wholeNumber("placement.maxReplicasPerNode", placement.maxReplicasPerNode, "max replicas per node");
    if (spec.mode.kind === "global" && placement.maxReplicasPerNode > 0) {
      fail("placement.maxReplicasPerNode", "max replicas per node applies to replicated services only");
    }
  }

  const rp = spec.restartPolicy;
  if (typeof rp !== "object" || rp === null) fail("restartPolicy", "restartPolicy must be an object");
  oneOf("restartPolicy.condition", rp.condition, ["none", "on-failure", "any"], "restart condition");
  wholeNumber("restartPolicy.delayMs", rp.delayMs, "restart delay");
  wholeNumber("restartPolicy.maxAttempts", rp.maxAttempts, "max restart attempts");
  wholeNumber("restartPolicy.windowMs", rp.windowMs, "restart window");

  oneOf("rebalancePolicy", spec.rebalancePolicy, ["manual", "auto"], "rebalance policy");
  if (spec.rebalancePolicy === "auto" && spec.mode.kind === "global") {
    fail("rebalancePolicy", "a global service runs one task per node: there is nothing to rebalance, use manual");
  }
  validateUpdateConfig("updateConfig", spec.updateConfig, false);
  validateUpdateConfig("rollbackConfig", spec.rollbackConfig, true);
  // A global task's replacement must land on the same node, where the old task still holds its
  // host ports during a start-first overlap: the update could never make progress. Ingress
  // ports hold nothing on the node (each task gets a dynamic host port).
  for (const field of ["updateConfig", "rollbackConfig"] as const) {
    if (spec.mode.kind === "global" && spec[field].order === "start-first" && spec.ports.some(isHostPort)) {
      fail(`${field}.order`, "start-first cannot be used by a global service that publishes host-mode ports: use stop-first");
    }
  }
  wholeNumber("stopGracePeriodMs", spec.stopGracePeriodMs, "stop grace period");
  validateNetworkAttachments(spec.networks);
  oneOf("endpointMode", spec.endpointMode, ["vip", "dnsrr"], "endpoint mode");
  // The mesh forwards to the service's VIP-less tasks by node port, but docker refuses the pair
  // and so do we: a dnsrr service publishes in host mode.
  if (spec.endpointMode === "dnsrr") {
    const i = spec.ports.findIndex((p) => p.mode === "ingress");
    if (i >= 0) fail(`ports[${i}].mode`, "a service with endpoint mode dnsrr can publish ports only in host mode (mode=host)", "ingress");
  }
  return spec;
}

/** Fills every default into user input and validates the result (see `validateServiceSpec`). */
export function normalizeServiceSpec(input: ServiceSpecInput): ServiceSpec {
  const spec: ServiceSpec = {
    name: input.name,
    image: input.image,
    command: input.command ?? [],
    args: input.args ?? [],
    env: input.env ?? {},
    labels: input.labels ?? {},
    containerLabels: input.containerLabels ?? {},
    hostname: input.hostname ?? "",
    user: input.user ?? "",
    workdir: input.workdir ?? "",
    mode: input.mode ?? { kind: "replicated", replicas: 1 },
    resources: {
      reservations: { nanoCpus: 0, memoryBytes: 0, ...input.resources?.reservations },
      limits: { nanoCpus: 0, memoryBytes: 0, ...input.resources?.limits },
    },
    // traffic is kept only when local: cluster is the default, and specs stay as they were stored.
    ports: (input.ports ?? []).map(({ traffic, ...p }) => ({
      ...p,
      protocol: p.protocol ?? "tcp",
      mode: p.mode ?? "ingress",
      ...(traffic === "cluster" ? {} : traffic === undefined ? {} : { traffic }),
    })),
    // Not a list: left for validateMounts to refuse, naming the field.
    mounts: Array.isArray(input.mounts) ? input.mounts.map(normalizeMount) : ((input.mounts ?? []) as readonly Mount[]),
    secrets: normalizeSecretReferences("secret", input.secrets),
    configs: normalizeSecretReferences("config", input.configs),
    healthcheck: { ...DEFAULT_HEALTHCHECK, ...input.healthcheck },
    placement: {
      constraints: input.placement?.constraints ?? [],
      preferences: input.placement?.preferences ?? [],
      ...(input.placement?.maxReplicasPerNode !== undefined ? { maxReplicasPerNode: input.placement.maxReplicasPerNode } : {}),
    },
    restartPolicy: { ...DEFAULT_RESTART_POLICY, ...input.restartPolicy },
    updateConfig: { ...DEFAULT_UPDATE_CONFIG, ...input.updateConfig },
    rollbackConfig: { ...DEFAULT_ROLLBACK_CONFIG, ...input.rollbackConfig },
    stopGracePeriodMs: input.stopGracePeriodMs ?? DEFAULT_STOP_GRACE_PERIOD_MS,
    rebalancePolicy: input.rebalancePolicy ?? "manual",
    // Not a list: left for validateNetworkAttachments to refuse, naming the field.
    networks: Array.isArray(input.networks)
      ? input.networks.map((n: NetworkAttachmentInput) => ({ ...n, aliases: n.aliases ?? [] }))
      : ((input.networks ?? []) as readonly NetworkAttachment[]),
    endpointMode: input.endpointMode ?? "vip",
  };
  validateServiceSpec(spec);
  // Targets in their canonical form (no trailing slash), so equal specs compare equal.
  return { ...spec, mounts: validateMounts(spec.mounts) };
}
