// The flags \`service create\` and \`service update\` share, and how they become the API's request
// body: each is parsed by the same core parser the API uses, so a bad value fails here naming the flag.
import { readFileSync } from "node:fs";
import { Command, Option } from "commander";
import {
  commandOf,
  DomainError,
  parseEnvFile,
  parseConstraint,
  parseCpus,
  parseDuration,
  parseMemory,
  parseNetworkFlag,
  parseMountFlag,
  parseSecretFlag,
  parsePlacementPref,
  parsePublish,
  shellHealthTest,
} from "@flotilla/core";
import type { HealthCheck, RestartPolicy, ServiceUpdateRequest, UpdateConfig } from "@flotilla/api-types";
import { CtlError } from "../client";

export const collect = (v: string, prev: string[] = []) => [...prev, v];

/** Runs a core parser; its InvalidError becomes the CLI's error message, naming the flag. */
export function parse<T>(flag: string, fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    if (e instanceof DomainError) throw new CtlError(`${flag}: ${e.message}`);
    throw e;
  }
}

export function keyValues(flag: string, items: string[] = []): Record<string, string> {
  const outMap: Record<string, string> = {};
  for (const item of items) {
    const at = item.indexOf("=");
    if (at <= 0) throw new CtlError(`${flag}: expected KEY=VALUE, got ${JSON.stringify(item)}`);
    outMap[item.slice(0, at)] = item.slice(at + 1);
  }
  return outMap;
}

export function intOpt(flag: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  if (!/^\d+$/.test(v)) throw new CtlError(`${flag}: expected a whole number, got ${JSON.stringify(v)}`);
  return Number(v);
}

export interface SpecFlags {
  network?: string[];
  endpointMode?: "vip" | "dnsrr";
  env?: string[];
  label?: string[];
  publish?: string[];
  mount?: string[];
  secret?: string[];
  config?: string[];
  constraint?: string[];
  placementPref?: string[];
  reserveMemory?: string;
  reserveCpu?: string;
  limitMemory?: string;
  limitCpu?: string;
  restartCondition?: RestartPolicy["condition"];
  restartDelay?: string;
  restartMaxAttempts?: string;
  restartWindow?: string;
  updateParallelism?: string;
  updateDelay?: string;
  updateOrder?: UpdateConfig["order"];
  updateFailureAction?: UpdateConfig["failureAction"];
  updateMonitor?: string;
  updateMaxFailureRatio?: string;
  rollbackParallelism?: string;
  rollbackDelay?: string;
  rollbackOrder?: UpdateConfig["order"];
  rollbackFailureAction?: UpdateConfig["failureAction"];
  rollbackMonitor?: string;
  rollbackMaxFailureRatio?: string;
  entrypoint?: string;
  envFile?: string[];
  containerLabel?: string[];
  hostname?: string;
  user?: string;
  workdir?: string;
  stopGracePeriod?: string;
  rebalancePolicy?: "manual" | "auto";
  replicas?: string;
  withRegistryAuth?: boolean;
  healthCmd?: string;
  healthInterval?: string;
  healthTimeout?: string;
  healthStartPeriod?: string;
  healthRetries?: string;
  /** false with --no-healthcheck (commander's negated option). */
  healthcheck?: boolean;
}

/** `--health-*` and `--no-healthcheck` as the API's healthcheck (only those given), as docker takes them. */
function healthcheckOf(o: SpecFlags): Partial<HealthCheck> | undefined {
  const given = {
    ...(o.healthCmd !== undefined ? { test: shellHealthTest(o.healthCmd) } : {}),
    ...(o.healthInterval ? { intervalMs: parse("--health-interval", () => parseDuration(o.healthInterval!)) } : {}),
    ...(o.healthTimeout ? { timeoutMs: parse("--health-timeout", () => parseDuration(o.healthTimeout!)) } : {}),
    ...(o.healthStartPeriod ? { startPeriodMs: parse("--health-start-period", () => parseDuration(o.healthStartPeriod!)) } : {}),
    ...(o.healthRetries ? { retries: intOpt("--health-retries", o.healthRetries) } : {}),
  };
  if (o.healthcheck === false) {
    if (Object.keys(given).length) throw new CtlError("--no-healthcheck conflicts with --health-* options");
    return { test: ["NONE"], intervalMs: 0, timeoutMs: 0, startPeriodMs: 0, retries: 0 };
  }
  if (o.healthCmd !== undefined && o.healthCmd.trim() === "") throw new CtlError("--health-cmd: expected a command, got an empty string");
  return Object.keys(given).length ? given : undefined;
}

/** `--env-file`s in order (later files win), read with the compose parser. */
function envFiles(files: string[] = []): Record<string, string> {
  const env: Record<string, string> = {};
  for (const f of files) {
    let text: string;
    try {
      text = readFileSync(f, "utf8");
    } catch (e) {
      throw new CtlError(`--env-file: cannot read ${f}: ${(e as Error).message}`);
    }
    Object.assign(
      env,
      parse("--env-file", () => parseEnvFile(text, f)),
    );
  }
  return env;
}

/** `--update-*` or `--rollback-*` flags as an update config (only those given). */
function updateConfigOf(
  prefix: "update" | "rollback",
  f: {
    parallelism?: string;
    delay?: string;
    order?: UpdateConfig["order"];
    failureAction?: UpdateConfig["failureAction"];
    monitor?: string;
    maxFailureRatio?: string;
  },
): Partial<UpdateConfig> {
  let ratio: number | undefined;
  if (f.maxFailureRatio !== undefined) {
    ratio = Number(f.maxFailureRatio);
    if (f.maxFailureRatio.trim() === "" || !(ratio >= 0 && ratio <= 1))
      throw new CtlError(`--${prefix}-max-failure-ratio: expected a number from 0 to 1, got ${JSON.stringify(f.maxFailureRatio)}`);
  }
  return {
    ...(f.parallelism ? { parallelism: intOpt(`--${prefix}-parallelism`, f.parallelism) } : {}),
    ...(f.delay ? { delayMs: parse(`--${prefix}-delay`, () => parseDuration(f.delay!)) } : {}),
    ...(f.order ? { order: f.order } : {}),
    ...(f.failureAction ? { failureAction: f.failureAction } : {}),
    ...(f.monitor ? { monitorMs: parse(`--${prefix}-monitor`, () => parseDuration(f.monitor!)) } : {}),
    ...(ratio !== undefined ? { maxFailureRatio: ratio } : {}),
  };
}

/** Flags shared by `create` and `update`, as the API's body fields (only those given). */
export function specBody(o: SpecFlags): ServiceUpdateRequest {
  const body: ServiceUpdateRequest = {};
  if (o.envFile || o.env) body.env = { ...envFiles(o.envFile), ...keyValues("--env", o.env) };
  // docker's --entrypoint is one string, split as a shell would; "" clears it (the image's).
  if (o.entrypoint !== undefined) body.command = parse("--entrypoint", () => commandOf(o.entrypoint!, "--entrypoint"));
  if (o.label) body.labels = keyValues("--label", o.label);
  if (o.containerLabel) body.containerLabels = keyValues("--container-label", o.containerLabel);
  if (o.hostname !== undefined) body.hostname = o.hostname;
  if (o.user !== undefined) body.user = o.user;
  if (o.workdir !== undefined) body.workdir = o.workdir;
  if (o.publish) body.ports = o.publish.map((p) => parse("--publish", () => parsePublish(p)));
  if (o.mount) body.mounts = o.mount.map((m) => parse("--mount", () => parseMountFlag(m)));
  if (o.secret) body.secrets = o.secret.map((s) => parse("--secret", () => parseSecretFlag("secret", s)));
  if (o.config) body.configs = o.config.map((s) => parse("--config", () => parseSecretFlag("config", s)));
  if (o.constraint || o.placementPref) {
    body.placement = {
      ...(o.constraint ? { constraints: o.constraint.map((c) => (parse("--constraint", () => parseConstraint(c)), c)) } : {}),
      ...(o.placementPref ? { preferences: o.placementPref.map((p) => parse("--placement-pref", () => parsePlacementPref(p))) } : {}),
    };
  }
  const reservations = {
    ...(o.reserveMemory ? { memoryBytes: parse("--reserve-memory", () => parseMemory(o.reserveMemory!)) } : {}),
    ...(o.reserveCpu ? { nanoCpus: parse("--reserve-cpu", () => parseCpus(o.reserveCpu!)) } : {}),
  };
  const limits = {
    ...(o.limitMemory ? { memoryBytes: parse("--limit-memory", () => parseMemory(o.limitMemory!)) } : {}),
    ...(o.limitCpu ? { nanoCpus: parse("--limit-cpu", () => parseCpus(o.limitCpu!)) } : {}),
  };
  if (Object.keys(reservations).length || Object.keys(limits).length) body.resources = { reservations, limits };
  const restart = {
    ...(o.restartCondition ? { condition: o.restartCondition } : {}),
    ...(o.restartDelay ? { delayMs: parse("--restart-delay", () => parseDuration(o.restartDelay!)) } : {}),
    ...(o.restartMaxAttempts ? { maxAttempts: intOpt("--restart-max-attempts", o.restartMaxAttempts) } : {}),
    ...(o.restartWindow ? { windowMs: parse("--restart-window", () => parseDuration(o.restartWindow!)) } : {}),
  };
  if (Object.keys(restart).length) body.restartPolicy = restart;
  const update = updateConfigOf("update", {
    parallelism: o.updateParallelism,
    delay: o.updateDelay,
    order: o.updateOrder,
    failureAction: o.updateFailureAction,
    monitor: o.updateMonitor,
    maxFailureRatio: o.updateMaxFailureRatio,
  });
  if (Object.keys(update).length) body.updateConfig = update;
  const rollback = updateConfigOf("rollback", {
    parallelism: o.rollbackParallelism,
    delay: o.rollbackDelay,
    order: o.rollbackOrder,
    failureAction: o.rollbackFailureAction,
    monitor: o.rollbackMonitor,
    maxFailureRatio: o.rollbackMaxFailureRatio,
  });
  if (Object.keys(rollback).length) body.rollbackConfig = rollback;
  if (o.stopGracePeriod) body.stopGracePeriodMs = parse("--stop-grace-period", () => parseDuration(o.stopGracePeriod!));
  if (o.rebalancePolicy) body.rebalancePolicy = o.rebalancePolicy;
  if (o.network) body.networks = o.network.map((n) => parse("--network", () => parseNetworkFlag(n)));
  if (o.endpointMode) body.endpointMode = o.endpointMode;
  if (o.replicas !== undefined) body.replicas = intOpt("--replicas", o.replicas);
  const health = healthcheckOf(o);
  if (health) body.healthcheck = health;
  return body;
}

export function specOptions(cmd: Command): Command {
  return cmd
    .option("--replicas <n>", "number of tasks (replicated mode)")
    .option("-e, --env <K=V>", "environment variable (repeatable)", collect)
    .option("--env-file <file>", "read environment variables from a file of KEY=VALUE lines (repeatable; --env wins)", collect)
    .option("--entrypoint <cmd>", "override the image's entrypoint (split as a shell would; \"\" for the image's own)")
    .option("-l, --label <K=V>", "service label (repeatable)", collect)
    .option("--container-label <K=V>", "label of the tasks' containers only (repeatable)", collect)
    .option("--hostname <name>", "the containers' host name")
    .option("-u, --user <user[:group]>", "user (and group), names or ids, the command runs as")
    .option("-w, --workdir <dir>", "working directory of the command")
    .option(
      "-p, --publish <port>",
      "publish a port: published:target[/tcp|udp] answers on every node (ingress mesh); published=P,target=T[,protocol=udp],mode=host only on the task's node; published=P,target=T,traffic=local: every node answers with its own tasks only, keeping the client's address (repeatable)",
      collect,
    )
    .option(
      "--mount <mount>",
      "mount into each task: type=volume,source=NAME,target=/PATH (the node's named volume, kept across task replacements), type=bind,source=/HOST,target=/PATH (admin only), type=tmpfs,target=/PATH[,tmpfs-size=64m]; add readonly for read-only (repeatable)",
      collect,
    )
    .option(
      "--secret <secret>",
      "give each task a stored secret as a read-only file: NAME (at /run/secrets/NAME) or source=NAME[,target=FILE|/PATH][,uid=0][,gid=0][,mode=0444] (repeatable)",
      collect,
    )
    .option(
      "--config <config>",
      "give each task a stored config as a read-only file: NAME (at /NAME) or source=NAME[,target=/PATH][,uid=0][,gid=0][,mode=0444] (repeatable)",
      collect,
    )
    .option("--constraint <expr>", "placement constraint, e.g. node.labels.zone==a (repeatable)", collect)
    .option("--placement-pref <pref>", "placement preference, e.g. spread=node.labels.zone (repeatable)", collect)
    .option("--reserve-memory <size>", "memory reserved per task (64m, 1g)")
    .option("--reserve-cpu <cpus>", "CPUs reserved per task (0.5)")
    .option("--limit-memory <size>", "memory limit per task")
    .option("--limit-cpu <cpus>", "CPU limit per task")
    .addOption(new Option("--restart-condition <cond>", "when to restart tasks").choices(["none", "on-failure", "any"]))
    .option("--restart-delay <duration>", "delay before a restart (5s)")
    .option("--restart-max-attempts <n>", "give up after n restarts (0: never)")
    .option("--restart-window <duration>", "window in which restarts are counted (0: since the spec version)")
    .option("--update-parallelism <n>", "tasks replaced at once (0: all)")
    .option("--update-delay <duration>", "delay between update batches (10s, 1m30s)")
    .addOption(new Option("--update-order <order>", "stop-first or start-first").choices(["stop-first", "start-first"]))
    .addOption(new Option("--update-failure-action <action>", "on failed update").choices(["pause", "continue", "rollback"]))
    .option("--update-monitor <duration>", "after each task starts, how long a failure counts against the update (5s)")
    .option("--update-max-failure-ratio <ratio>", "fraction of tasks (0 to 1) that may fail before the failure action")
    .option("--rollback-parallelism <n>", "tasks rolled back at once (0: all)")
    .option("--rollback-delay <duration>", "delay between rollback batches")
    .addOption(new Option("--rollback-order <order>", "stop-first or start-first").choices(["stop-first", "start-first"]))
    .addOption(new Option("--rollback-failure-action <action>", "on failed rollback").choices(["pause", "continue"]))
    .option("--rollback-monitor <duration>", "after each rolled-back task starts, how long a failure counts")
    .option("--rollback-max-failure-ratio <ratio>", "fraction of tasks (0 to 1) that may fail during a rollback")
    .option("--stop-grace-period <duration>", "time between SIGTERM and SIGKILL (10s)")
    .addOption(
      new Option(
        "--rebalance-policy <policy>",
        "auto: rebalance (as --rebalance) whenever a node joins or comes back; manual (default)",
      ).choices(["manual", "auto"]),
    )
    .option(
      "--network <network>",
      "join an overlay network: NAME, or name=NAME,alias=ALIAS[,alias=...] for extra DNS names there (repeatable; ctl network create --driver overlay NAME)",
      collect,
    )
    .addOption(
      new Option(
        "--endpoint-mode <mode>",
        "vip (default): the service's name resolves to one virtual IP per network; dnsrr: to its running tasks' addresses",
      ).choices(["vip", "dnsrr"]),
    )
    .option(
      "--with-registry-auth",
      "send your credentials for the image's registry (from docker login: $DOCKER_CONFIG or ~/.docker/config.json) to the agents, for this service's pulls only; stored encrypted",
    )
    .option("--health-cmd <cmd>", "health check command, run with the image's /bin/sh in each task (a task runs only once healthy)")
    .option("--health-interval <duration>", "time between health checks (the image's, else 30s)")
    .option("--health-timeout <duration>", "longest a health check may run (the image's, else 30s)")
    .option("--health-start-period <duration>", "failed health checks in this period after the start do not count")
    .option("--health-retries <n>", "failed health checks in a row that make a task unhealthy (the image's, else 3)")
    .option("--no-healthcheck", "disable the image's HEALTHCHECK")
    .option("-d, --detach", "return at once instead of following convergence")
    .option("--timeout <duration>", "give up following after this long", "5m");
}
