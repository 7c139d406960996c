import { Command, Option } from "commander";
import {
  ACTIVE_TASK_STATES,
  DomainError,
  parseConstraint,
  parseCpus,
  parseDuration,
  parseMemory,
  parsePlacementPref,
  parsePublish,
} from "@flotilla/core";
import type {
  RestartPolicy,
  ServiceCreateRequest,
  ServiceUpdateRequest,
  ServiceView as ServiceJson,
  TaskView as TaskJson,
  UpdateConfig,
} from "@flotilla/api-types";
import { ApiClient, CtlError, loadCtlConfig } from "../client";
import { json, note, out, table } from "../output";

const ACTIVE: ReadonlySet<string> = new Set(ACTIVE_TASK_STATES);
// Every non-running task pending with a reason for this long means nothing will change by
// itself (a short blip is normal: a stop-first update frees capacity a moment later).
const STUCK_MS = 2_000;

/**
 * Follows a service until every wanted task runs the current spec. Never hangs: stops with the
 * reasons when the tasks that are not running all wait for a node, when an update pauses, or at
 * the timeout. Progress goes to stderr.
 */
async function converge(c: ApiClient, id: string, timeoutMs: number): Promise<void> {
  const end = Date.now() + timeoutMs;
  let last = "";
  let stuckSince: number | undefined;
  for (;;) {
    const svc = await c.request<ServiceJson>("GET", `/api/v1/services/${id}`);
    const tasks = await c.request<TaskJson[]>("GET", `/api/v1/tasks?service=${id}&desired-state=running`);
    const live = tasks.filter((t) => ACTIVE.has(t.state));
    const current = live.filter((t) => t.specVersion === svc.taskVersion);
    const running = current.filter((t) => t.state === "RUNNING").length;
    const desired = svc.mode === "replicated" ? svc.desired : live.length;
    const line = `${svc.name}: ${running}/${desired} tasks running${svc.updateState && svc.updateState.status !== "completed" && svc.updateState.status !== "rollback-completed" ? ` (${svc.updateState.message})` : ""}`;
    if (line !== last) note(line);
    last = line;
    if (running === desired && live.length === desired) {
      note(`${svc.name}: converged`);
      return;
    }
    if (svc.updateState?.status === "paused" || svc.updateState?.status === "rollback-paused") {
      throw new CtlError(`${svc.name}: ${svc.updateState.message}`);
    }
    const waiting = live.filter((t) => t.state !== "RUNNING");
    const stuck = waiting.length > 0 && waiting.every((t) => t.state === "PENDING" && t.message);
    stuckSince = stuck ? (stuckSince ?? Date.now()) : undefined;
    if (stuckSince !== undefined && Date.now() - stuckSince >= STUCK_MS) {
      for (const t of waiting) note(`${t.name}: ${t.message}`);
      throw new CtlError(`${svc.name}: ${waiting.length} task(s) cannot be placed: ${[...new Set(waiting.map((t) => t.message))].join("; ")}`);
    }
    if (Date.now() > end) throw new CtlError(`${svc.name}: not converged after ${Math.round(timeoutMs / 1000)}s (${running}/${desired} running)`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

const collect = (v: string, prev: string[] = []) => [...prev, v];

/** Runs a core parser; its InvalidError becomes the CLI's error message, naming the flag. */
function parse<T>(flag: string, fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    if (e instanceof DomainError) throw new CtlError(`${flag}: ${e.message}`);
    throw e;
  }
}

function keyValues(flag: string, items: string[] = []): Record<string, string> {
  const outMap: Record<string, string> = {};
  for (const item of items) {
    const at = item.indexOf("=");
    if (at <= 0) throw new CtlError(`${flag}: expected KEY=VALUE, got ${JSON.stringify(item)}`);
    outMap[item.slice(0, at)] = item.slice(at + 1);
  }
  return outMap;
}

function intOpt(flag: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  if (!/^\d+$/.test(v)) throw new CtlError(`${flag}: expected a whole number, got ${JSON.stringify(v)}`);
  return Number(v);
}

interface SpecFlags {
  env?: string[];
  label?: string[];
  publish?: string[];
  constraint?: string[];
  placementPref?: string[];
  reserveMemory?: string;
  reserveCpu?: string;
  limitMemory?: string;
  limitCpu?: string;
  restartCondition?: RestartPolicy["condition"];
  restartDelay?: string;
  restartMaxAttempts?: string;
  updateParallelism?: string;
  updateDelay?: string;
  updateOrder?: UpdateConfig["order"];
  updateFailureAction?: UpdateConfig["failureAction"];
  stopGracePeriod?: string;
  replicas?: string;
}

/** Flags shared by `create` and `update`, as the API's body fields (only those given). */
function specBody(o: SpecFlags): ServiceUpdateRequest {
  const body: ServiceUpdateRequest = {};
  if (o.env) body.env = keyValues("--env", o.env);
  if (o.label) body.labels = keyValues("--label", o.label);
  if (o.publish) body.ports = o.publish.map((p) => parse("--publish", () => parsePublish(p)));
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
  };
  if (Object.keys(restart).length) body.restartPolicy = restart;
  const update = {
    ...(o.updateParallelism ? { parallelism: intOpt("--update-parallelism", o.updateParallelism) } : {}),
    ...(o.updateDelay ? { delayMs: parse("--update-delay", () => parseDuration(o.updateDelay!)) } : {}),
    ...(o.updateOrder ? { order: o.updateOrder } : {}),
    ...(o.updateFailureAction ? { failureAction: o.updateFailureAction } : {}),
  };
  if (Object.keys(update).length) body.updateConfig = update;
  if (o.stopGracePeriod) body.stopGracePeriodMs = parse("--stop-grace-period", () => parseDuration(o.stopGracePeriod!));
  if (o.replicas !== undefined) body.replicas = intOpt("--replicas", o.replicas);
  return body;
}

function specOptions(cmd: Command): Command {
  return cmd
    .option("--replicas <n>", "number of tasks (replicated mode)")
    .option("-e, --env <K=V>", "environment variable (repeatable)", collect)
    .option("-l, --label <K=V>", "service label (repeatable)", collect)
    .option(
      "-p, --publish <port>",
      "publish a port: published:target[/tcp|udp] answers on every node (ingress mesh); published=P,target=T[,protocol=udp],mode=host only on the task's node (repeatable)",
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
    .option("--update-parallelism <n>", "tasks replaced at once (0: all)")
    .option("--update-delay <duration>", "delay between update batches (10s, 1m30s)")
    .addOption(new Option("--update-order <order>", "stop-first or start-first").choices(["stop-first", "start-first"]))
    .addOption(new Option("--update-failure-action <action>", "on failed update").choices(["pause", "continue", "rollback"]))
    .option("--stop-grace-period <duration>", "time between SIGTERM and SIGKILL (10s)")
    .option("-d, --detach", "return at once instead of following convergence")
    .option("--timeout <duration>", "give up following after this long", "5m");
}

const client = () => new ApiClient(loadCtlConfig());
const enc = encodeURIComponent;

async function follow(c: ApiClient, svc: ServiceJson, opts: { detach?: boolean; timeout: string }): Promise<void> {
  if (opts.detach) return;
  await converge(c, svc.id, parse("--timeout", () => parseDuration(opts.timeout)));
}

function age(iso: string): string {
  const s = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
  return s < 60 ? `${s} seconds ago` : s < 3600 ? `${Math.round(s / 60)} minutes ago` : `${Math.round(s / 3600)} hours ago`;
}

export function registerService(program: Command): void {
  // As with docker: everything after IMAGE belongs to the container's command, flags included.
  const service = program.command("service").description("manage services: desired state kept running across nodes").enablePositionalOptions();

  specOptions(
    service
      .command("create <image> [cmd...]")
      .description("create a service and follow it until its tasks run (options go before IMAGE)")
      .passThroughOptions()
      .requiredOption("--name <name>", "service name")
      .addOption(new Option("--mode <mode>", "replicated or global").choices(["replicated", "global"]).default("replicated")),
  ).action(async (image: string, cmd: string[], o: SpecFlags & { name: string; mode: string; detach?: boolean; timeout: string }) => {
    const body: ServiceCreateRequest = { name: o.name, image, ...specBody(o), ...(cmd.length ? { args: cmd } : {}) };
    if (o.mode === "global") {
      if (o.replicas !== undefined) throw new CtlError("--replicas cannot be used with --mode global");
      body.mode = { kind: "global" };
    }
    const c = client();
    const svc = await c.request<ServiceJson>("POST", "/api/v1/services", body);
    out(svc.id);
    await follow(c, svc, o);
  });

  service
    .command("ls")
    .description("list services")
    .option("--json", "print JSON")
    .option("-q, --quiet", "print ids only")
    .action(async (o: { json?: boolean; quiet?: boolean }) => {
      const rows = await client().request<ServiceJson[]>("GET", "/api/v1/services");
      if (o.json) return void json(rows);
      if (o.quiet) return void (rows.length && out(rows.map((r) => r.id).join("\n")));
      // As docker prints them: `*:8080->80/tcp` is answered by every node (ingress mode).
      const ports = (r: (typeof rows)[number]) => r.spec.ports.map((p) => `${p.mode === "host" ? "host" : "*"}:${p.published}->${p.target}/${p.protocol}`).join(", ");
      out(
        table(
          rows.map((r) => ({ id: r.id.slice(0, 12), name: r.name, mode: r.mode, replicas: `${r.running}/${r.desired}`, image: r.spec.image, ports: ports(r) })),
          [["ID", "id"], ["NAME", "name"], ["MODE", "mode"], ["REPLICAS", "replicas"], ["IMAGE", "image"], ["PORTS", "ports"]],
        ),
      );
    });

  service
    .command("ps <service>")
    .description("list a service's tasks")
    .option("--json", "print JSON")
    .option("-q, --quiet", "print task ids only")
    .action(async (ref: string, o: { json?: boolean; quiet?: boolean }) => {
      const tasks = await client().request<TaskJson[]>("GET", `/api/v1/tasks?service=${enc(ref)}`);
      if (o.json) return void json(tasks);
      if (o.quiet) return void (tasks.length && out(tasks.map((t) => t.id).join("\n")));
      out(
        table(
          tasks.map((t) => ({
            id: t.id.slice(0, 12),
            name: t.name,
            node: t.nodeHostname ?? "",
            desired: t.desiredState,
            current: `${t.state} ${age(t.updatedAt)}`,
            error: t.error ?? (t.state === "PENDING" ? (t.message ?? "") : ""),
          })),
          [["ID", "id"], ["NAME", "name"], ["NODE", "node"], ["DESIRED STATE", "desired"], ["CURRENT STATE", "current"], ["ERROR", "error"]],
        ),
      );
    });

  service
    .command("inspect <service...>")
    .description("show services as JSON")
    .action(async (refs: string[]) => {
      const c = client();
      json(await Promise.all(refs.map((r) => c.request<ServiceJson>("GET", `/api/v1/services/${enc(r)}`))));
    });

  service
    .command("scale <service=replicas...>")
    .description("set the replicas of one or more services, e.g. web=5 api=2")
    .option("-d, --detach", "return at once")
    .option("--timeout <duration>", "give up following after this long", "5m")
    .action(async (pairs: string[], o: { detach?: boolean; timeout: string }) => {
      const c = client();
      const targets = pairs.map((p) => {
        const m = /^([^=]+)=(\d+)$/.exec(p);
        if (!m) throw new CtlError(`invalid scale ${JSON.stringify(p)}: use SERVICE=REPLICAS, e.g. web=5`);
        return { ref: m[1], replicas: Number(m[2]) };
      });
      const scaled: ServiceJson[] = [];
      for (const t of targets) {
        scaled.push(await c.request<ServiceJson>("POST", `/api/v1/services/${enc(t.ref)}/scale`, { replicas: t.replicas }));
        note(`${t.ref} scaled to ${t.replicas}`);
      }
      for (const s of scaled) await follow(c, s, o);
    });

  specOptions(
    service
      .command("update <service>")
      .description("change a service; changes that reach the containers roll out batch by batch")
      .option("--image <image>", "new image")
      .option("--env-add <K=V>", "add or change an environment variable (repeatable)", collect)
      .option("--env-rm <K>", "remove an environment variable (repeatable)", collect)
      .option("--args <args...>", "new command arguments"),
  ).action(async (ref: string, o: SpecFlags & { image?: string; envAdd?: string[]; envRm?: string[]; args?: string[]; detach?: boolean; timeout: string }) => {
    const c = client();
    const body = specBody(o);
    if (o.image) body.image = o.image;
    if (o.args) body.args = o.args;
    if (o.envAdd || o.envRm) {
      const current = await c.request<ServiceJson>("GET", `/api/v1/services/${enc(ref)}`);
      const env = { ...current.spec.env, ...body.env, ...keyValues("--env-add", o.envAdd) };
      for (const k of o.envRm ?? []) delete env[k];
      body.env = env;
    }
    if (Object.keys(body).length === 0) throw new CtlError("nothing to update: give at least one flag (see ctl service update --help)");
    const svc = await c.request<ServiceJson>("PATCH", `/api/v1/services/${enc(ref)}`, body);
    note(`${svc.name} updated to version ${svc.version}`);
    await follow(c, svc, o);
  });

  service
    .command("rollback <service>")
    .description("return a service to its previous spec")
    .option("-d, --detach", "return at once")
    .option("--timeout <duration>", "give up following after this long", "5m")
    .action(async (ref: string, o: { detach?: boolean; timeout: string }) => {
      const c = client();
      const svc = await c.request<ServiceJson>("POST", `/api/v1/services/${enc(ref)}/rollback`);
      note(`${svc.name} rolled back (version ${svc.version})`);
      await follow(c, svc, o);
    });

  service
    .command("rm <service...>")
    .description("remove services; their containers are stopped")
    .action(async (refs: string[]) => {
      const c = client();
      for (const r of refs) {
        await c.request("DELETE", `/api/v1/services/${enc(r)}`);
        out(r);
      }
    });

  service
    .command("logs <service>")
    .description("show the logs of a service's tasks, prefixed by task")
    .option("-f, --follow", "keep following")
    .option("--tail <n>", "last n lines per task")
    .action(async (ref: string, o: { follow?: boolean; tail?: string }) => {
      const q = new URLSearchParams();
      if (o.follow) q.set("follow", "1");
      if (o.tail) q.set("tail", String(intOpt("--tail", o.tail)));
      const res = await client().raw("GET", `/api/v1/services/${enc(ref)}/logs${q.size ? `?${q}` : ""}`, undefined, "text/plain");
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) process.stdout.write(chunk);
    });
}
