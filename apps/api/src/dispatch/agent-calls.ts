// The calls one dispatch job makes to one agent: launch (create, start, inspect), stop and remove,
// each turning the agent's answer, or its silence, into what dispatch records.
import { Logger } from "@nestjs/common";
import { isIngressPort, type ServiceSpec } from "@flotilla/core";
import {
  EngineConflictError,
  EngineNotFoundError,
  EngineUnreachableError,
  engineError,
  launchFailed,
  type ContainerCreateBody,
  type LaunchResult,
} from "@flotilla/engine-client";
import type { Node as NodeRow, Service as ServiceRow, Task as TaskRow } from "../generated/prisma/client";
import { specOf, taskName } from "../services/mapping";
import type { LaunchOutcome } from "../tasks/tasks.repository";
import { containerBody, ingressEndpoints, type BodyAttachment } from "./container-body";
import type { EngineClients } from "./engine-clients";
import { readLogTail } from "./task-logs";
import type { TaskValuesLoader } from "./task-values";

/** What dispatch needs of a service. */
export type ServiceRef = Pick<ServiceRow, "id" | "name" | "spec" | "updateState">;

// A dispatch job reads each service once and launches up to thousands of its tasks: the stored
// spec is parsed (validated) once per row read, not once per task.
const parsedSpecs = new WeakMap<ServiceRef, ServiceSpec>();

/** The service's spec, parsed once for this row object. */
export function refSpec(service: ServiceRef): ServiceSpec {
  let spec = parsedSpecs.get(service);
  if (!spec) parsedSpecs.set(service, (spec = specOf(service)));
  return spec;
}

/**
 * Containers per launch request. A real host starts them 8 at a time, and the request's timeout
 * grows with its size (engine-client's LAUNCH_ALLOWANCE_MS): 16 keeps an answer within ~30 s
 * even on a busy host, while a node's share of a large service still takes only a few requests.
 */
export const LAUNCH_BATCH = 16;
// Launches prepared at once (secrets read, overlay addresses given out): Postgres round trips.
const PREPARE_PARALLEL = 8;

/** A task to launch and its service. */
export interface LaunchItem {
  service: ServiceRef;
  task: TaskRow;
}

/** A launch ready to send: its create body and the credentials its image's pull needs. */
interface PreparedLaunch extends LaunchItem {
  spec: ServiceSpec;
  name: string;
  body: ContainerCreateBody;
  registryAuth?: string;
}

/** What dispatch needs of a node: where its agent answers. */
export type AgentRef = Pick<NodeRow, "hostname" | "engineUrl">;

/**
 * The calls one dispatch job makes to one agent. Once the agent proved unreachable, the rest
 * fail at once with that error: a blackholed agent costs one timeout per job, not one per task.
 */
export class AgentCalls {
  private unreachable?: Error;
  /** Cleared once the agent answered that it has no launch batches (an agent from before them). */
  private batches = true;

  constructor(
    private readonly node: AgentRef,
    private readonly engines: EngineClients,
  ) {}

  /**
   * Creates (idempotently: the name is the task's) and starts a prepared launch's container with
   * one call each: for an agent from before launch batches.
   */
  private async launchOneByOne(p: PreparedLaunch): Promise<LaunchOutcome> {
    const { task, spec, body, name, registryAuth } = p;
    try {
      const { containerId, endpoints, starting } = await this.call(async (engine) => {
        let containerId: string;
        try {
          containerId = await engine.createContainer(name, body, registryAuth);
        } catch (e) {
          // A previous attempt created it (this one took over a stale claim): use that container.
          if (!(e instanceof EngineConflictError)) throw e;
          containerId = (await engine.inspectContainer(name)).Id;
        }
        await engine.startContainer(containerId);
        // The inspect tells whether the container has a health check (the spec's or the
        // image's): then the task is STARTING until its agent reports it healthy.
        const inspect = await engine.inspectContainer(containerId);
        const starting = inspect.State.Health !== undefined && inspect.State.Health.Status !== "healthy";
        if (!spec.ports.some(isIngressPort)) return { containerId, endpoints: undefined, starting };
        return { containerId, endpoints: ingressEndpoints(spec, inspect.NetworkSettings?.Ports), starting };
      });
      return { task, node: this.node.hostname, containerId, starting, ...(endpoints ? { endpoints } : {}) };
    } catch (e) {
      return this.unlaunched(task, e);
    }
  }

  /** The outcome of a launch that failed with `e` before the agent said anything of it. */
  private unlaunched(task: TaskRow, e: unknown): LaunchOutcome {
    new Logger("dispatch").warn(`task ${task.id} on ${this.node.hostname}: ${(e as Error).message}`);
    // Sent but never answered (a timeout, a connection lost): the container may exist and run.
    // The task stays claimed: the node's heartbeat adopts its container, or once the claim is
    // stale the sweep launches it again under the same name. Rejecting it would start a second
    // container for the slot beside one that may be running. A request that never reached the
    // agent (refused, no route) created nothing: that task is rejected and replaced at once.
    if (e instanceof EngineUnreachableError && !e.notDelivered)
      return { task, node: this.node.hostname, unanswered: true, error: (e as Error).message };
    return { task, node: this.node.hostname, error: (e as Error).message };
  }

  /**
   * Launches tasks a batch per request (LAUNCH_BATCH), handing each batch's outcomes to
   * `record` as they come. An agent without launch batches gets the one-by-one calls of
   * `launch`; one that is unreachable leaves the rest of its batches unanswered at once.
   */
  async launchAll(
    items: readonly LaunchItem[],
    values: TaskValuesLoader,
    attach: (task: TaskRow, spec: ServiceSpec) => Promise<readonly BodyAttachment[]>,
    record: (outcomes: LaunchOutcome[]) => Promise<void>,
  ): Promise<void> {
    const prepared: PreparedLaunch[] = [];
    const failed: LaunchOutcome[] = [];
    await inParallel(items, PREPARE_PARALLEL, async (item) => {
      const r = await this.prepare(item, values, attach);
      if ("body" in r) prepared.push(r);
      else failed.push(r);
    });
    if (failed.length) await record(failed);
    // One request carries one image pull's credentials: launches are grouped by them.
    const groups = new Map<string | undefined, PreparedLaunch[]>();
    for (const p of prepared) {
      const group = groups.get(p.registryAuth);
      if (group) group.push(p);
      else groups.set(p.registryAuth, [p]);
    }
    for (const group of groups.values())
      for (let i = 0; i < group.length; i += LAUNCH_BATCH) await record(await this.launchBatch(group.slice(i, i + LAUNCH_BATCH)));
  }

  /** A launch's create body, or the outcome that it could not be made (a secret gone, no address left). */
  private async prepare(
    { service, task }: LaunchItem,
    values: TaskValuesLoader,
    attach: (task: TaskRow, spec: ServiceSpec) => Promise<readonly BodyAttachment[]>,
  ): Promise<PreparedLaunch | LaunchOutcome> {
    const spec = refSpec(service);
    try {
      const { files, registryAuth } = await values.forTask(service.id, spec);
      const attachments = await attach(task, spec).catch((e: unknown) => {
        throw new Error(`overlay networks: ${(e as Error).message}`);
      });
      const body = { ...containerBody(service, spec, task, attachments), ...(files.length ? { FlotillaFiles: files } : {}) };
      return { service, task, spec, name: `${taskName(service.name, task)}.${task.id}`, body, ...(registryAuth ? { registryAuth } : {}) };
    } catch (e) {
      new Logger("dispatch").warn(`task ${task.id} on ${this.node.hostname}: ${(e as Error).message}`);
      return { task, node: this.node.hostname, error: (e as Error).message };
    }
  }

  /** One launch request; images the agent lacks are pulled once and their launches sent again. */
  private async launchBatch(batch: readonly PreparedLaunch[]): Promise<LaunchOutcome[]> {
    let results: LaunchResult[] | null;
    try {
      results = this.batches ? await this.call((engine) => engine.launchContainers(batch)) : null;
      if (results === null) {
        this.batches = false;
        const outcomes: LaunchOutcome[] = [];
        for (const p of batch) outcomes.push(await this.launchOneByOne(p));
        return outcomes.filter((o) => !o.unanswered);
      }
      const missing = batch.filter((p, i) => isMissingImage(results![i]));
      if (missing.length) {
        for (const image of new Set(missing.map((p) => p.body.Image)))
          await this.call((engine) => engine.pullImage(image, missing.find((p) => p.body.Image === image)!.registryAuth));
        const again = await this.call((engine) => engine.launchContainers(missing));
        if (again === null) throw new Error("the agent stopped offering launch batches");
        const retried = new Map(missing.map((p, i) => [p.name, again[i]]));
        results = results.map((r) => retried.get(r.Name) ?? r);
      }
    } catch (e) {
      return batch.flatMap((p) => {
        const o = this.unlaunched(p.task, e);
        return o.unanswered ? [] : [o];
      });
    }
    return batch.map((p, i) => this.outcomeOf(p, results![i]));
  }

  /** What dispatch records of one container's launch result. */
  private outcomeOf(p: PreparedLaunch, r: LaunchResult): LaunchOutcome {
    if (launchFailed(r)) {
      const message = engineError(`launch container ${p.name}`, r.Status, r.Message).message;
      new Logger("dispatch").warn(`task ${p.task.id} on ${this.node.hostname}: ${message}`);
      return { task: p.task, node: this.node.hostname, error: message };
    }
    const starting = r.Health !== undefined && r.Health !== "healthy";
    const endpoints = p.spec.ports.some(isIngressPort) ? ingressEndpoints(p.spec, r.Ports ?? undefined) : undefined;
    return { task: p.task, node: this.node.hostname, containerId: r.Id, starting, ...(endpoints ? { endpoints } : {}) };
  }

  /** Stops and removes a task's container; "unreachable" leaves the task for a later pass. */
  async stop(task: TaskRow, graceMs: number): Promise<{ exitCode?: number; log?: Buffer } | "unreachable"> {
    if (!task.containerId) return {};
    const id = task.containerId;
    try {
      return await this.call(async (engine) => {
        await engine.stopContainer(id, graceMs / 1000);
        const exitCode = (await engine.inspectContainer(id)).State.ExitCode;
        const log = await readLogTail(engine, id);
        await engine.removeContainer(id, true);
        return { exitCode, ...(log ? { log } : {}) };
      });
    } catch (e) {
      if (e instanceof EngineNotFoundError) return {};
      new Logger("dispatch").warn(`stop task ${task.id} on ${this.node.hostname}: ${(e as Error).message}`);
      return "unreachable";
    }
  }

  /** Stops and removes a container (keeping its log first when asked); true when it is gone. */
  async remove(containerId: string, graceMs: number, keepLog?: (log: Buffer) => Promise<void>): Promise<boolean> {
    try {
      await this.call(async (engine) => {
        await engine.stopContainer(containerId, graceMs / 1000).catch((e: unknown) => {
          if (!(e instanceof EngineNotFoundError)) throw e;
        });
        const log = keepLog ? await readLogTail(engine, containerId) : undefined;
        if (log) await keepLog!(log);
        await engine.removeContainer(containerId, true);
      });
      return true;
    } catch (e) {
      if (e instanceof EngineNotFoundError) return true;
      new Logger("dispatch").warn(`remove container ${containerId} on ${this.node.hostname}: ${(e as Error).message}`);
      return false;
    }
  }

  private async call<T>(fn: (engine: Awaited<ReturnType<EngineClients["forNode"]>>) => Promise<T>): Promise<T> {
    if (this.unreachable) throw this.unreachable;
    try {
      return await fn(await this.engines.forNode(this.node));
    } catch (e) {
      if (e instanceof EngineUnreachableError) this.unreachable = e;
      throw e;
    }
  }
}

/** A launch that failed because the agent lacks the image (pulled, then sent again). */
function isMissingImage(r: LaunchResult): boolean {
  return launchFailed(r) && r.Status === 404 && /no such image/i.test(r.Message);
}

/** Runs `fn` over items with at most `parallel` in flight. */
export async function inParallel<T>(items: readonly T[], parallel: number, fn: (t: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await fn(items[next++]);
  };
  await Promise.all(Array.from({ length: Math.min(parallel, items.length) }, worker));
}
