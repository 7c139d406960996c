// The calls one dispatch job makes to one agent: launch (create, start, inspect), stop and remove,
// each turning the agent's answer, or its silence, into what dispatch records.
import { Logger } from "@nestjs/common";
import { isIngressPort, type ServiceSpec } from "@flotilla/core";
import { EngineConflictError, EngineNotFoundError, EngineUnreachableError } from "@flotilla/engine-client";
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

/** What dispatch needs of a node: where its agent answers. */
export type AgentRef = Pick<NodeRow, "hostname" | "engineUrl">;

/**
 * The calls one dispatch job makes to one agent. Once the agent proved unreachable, the rest
 * fail at once with that error: a blackholed agent costs one timeout per job, not one per task.
 */
export class AgentCalls {
  private unreachable?: Error;

  constructor(
    private readonly node: AgentRef,
    private readonly engines: EngineClients,
  ) {}

  /** Creates (idempotently: the name is the task's) and starts a task's container. */
  async launch(
    service: ServiceRef,
    task: TaskRow,
    values: TaskValuesLoader,
    attach: (spec: ServiceSpec) => Promise<readonly BodyAttachment[]> = async () => [],
  ): Promise<LaunchOutcome> {
    const spec = refSpec(service);
    try {
      // Secrets and configs travel in the create body only (the agent keeps them off its records).
      const { files, registryAuth } = await values.forTask(service.id, spec);
      const attachments = await attach(spec).catch((e: unknown) => {
        throw new Error(`overlay networks: ${(e as Error).message}`);
      });
      const body = { ...containerBody(service, spec, task, attachments), ...(files.length ? { FlotillaFiles: files } : {}) };
      const { containerId, endpoints, starting } = await this.call(async (engine) => {
        const name = `${taskName(service.name, task)}.${task.id}`;
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
