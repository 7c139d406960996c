// Dispatch: makes one node's agent do what the task rows say, as its own deduplicated job per
// node (QUEUE.dispatch): ASSIGNED tasks are claimed and started, tasks the orchestrator stopped
// are stopped (grace period, then kill) and removed; a "remove" job removes containers no task
// wants (a removed service's, strays). Reconcile only asks for these jobs and never waits on
// them, so an agent that does not answer holds up its own node's job and nothing else: each call
// has the engine client's timeout, and after one failure to reach the agent the rest of that
// job's launches are rejected at once instead of each waiting out its own timeout.
import { Inject, Injectable, Logger, OnModuleInit } from "@nestjs/common";
import {
  DISPATCHED_TASK_STATES,
  dispatchWork,
  isHostPort,
  isIngressPort,
  isUpdateActive,
  STALE_CLAIM_MS,
  type Clock,
  type ServiceSpec,
  type TaskEndpoint,
  type UpdateState,
} from "@flotilla/core";
import {
  EngineConflictError,
  EngineNotFoundError,
  EngineUnreachableError,
  TASK_LABELS,
  type ContainerCreateBody,
} from "@flotilla/engine-client";
import type { Job } from "bullmq";
import { CLOCK } from "../common/clock";
import { PrismaService } from "../database/prisma.service";
import { NODE_COLUMNS, nodeRow } from "../database/node-rows";
import { TASK_COLUMNS } from "../database/task-rows";
import { EventsService } from "../events/events.service";
import type { Node as NodeRow, Service as ServiceRow, Task as TaskRow } from "../generated/prisma/client";
import { JobHandlers } from "../queues/job-handlers";
import { QUEUE, type DispatchJob, type DispatchPart, type RemoveContainersJob } from "../queues/queue-names";
import { QueuesService } from "../queues/queues.service";
import { ACTIVE_STATES, specOf, taskName, toCoreTask } from "../services/mapping";
import { ServicesRepository } from "../services/services.repository";
import { TasksRepository, type LaunchOutcome } from "../tasks/tasks.repository";
import { EngineClients } from "./engine-clients";
import { TaskValuesService, type TaskValuesLoader } from "./task-values";
import { readLogTail, TaskLogs } from "./task-logs";
import { nodeStatusSql } from "../database/sql";

export { STALE_CLAIM_MS };
// Calls to one agent in flight at once; nodes in flight at once is the queue's concurrency.
const PER_AGENT = 8;
// Launch outcomes recorded per statement.
const RECORD_CHUNK = 16;

/** What dispatch needs of a service. */
type ServiceRef = Pick<ServiceRow, "id" | "name" | "spec" | "updateState">;

/** What dispatch needs of a node: where its agent answers. */
export type AgentRef = Pick<NodeRow, "hostname" | "engineUrl">;

/** The Engine API create body for a task of `service`. */
export function containerBody(service: Pick<ServiceRow, "id">, spec: ServiceSpec, task: Pick<TaskRow, "id" | "slot">): ContainerCreateBody {
  // Ingress ports take a dynamic host port: the mesh on every node forwards the published port
  // to it. Host ports are the published port itself.
  const ports = spec.ports.map((p) => [`${p.target}/${p.protocol}`, isHostPort(p) ? String(p.published) : ""] as const);
  const limits = spec.resources.limits;
  // A volume is the node's: the agent creates it on first use and keeps it when the container
  // goes, so the next task on this node finds the data.
  const mounts = spec.mounts.map((m) => ({
    Type: m.type,
    ...(m.source !== undefined ? { Source: m.source } : {}),
    Target: m.target,
    ...(m.readOnly ? { ReadOnly: true } : {}),
    ...(m.tmpfsSizeBytes !== undefined ? { TmpfsOptions: { SizeBytes: m.tmpfsSizeBytes } } : {}),
  }));
  const h = spec.healthcheck;
  const ns = (ms: number) => ms * 1_000_000;
  const healthcheck =
    h.test.length || h.intervalMs || h.timeoutMs || h.startPeriodMs || h.retries
      ? {
          ...(h.test.length ? { Test: [...h.test] } : {}),
          ...(h.intervalMs ? { Interval: ns(h.intervalMs) } : {}),
          ...(h.timeoutMs ? { Timeout: ns(h.timeoutMs) } : {}),
          ...(h.startPeriodMs ? { StartPeriod: ns(h.startPeriodMs) } : {}),
          ...(h.retries ? { Retries: h.retries } : {}),
        }
      : undefined;
  return {
    Image: spec.image,
    ...(spec.command.length ? { Entrypoint: [...spec.command] } : {}),
    ...(spec.args.length ? { Cmd: [...spec.args] } : {}),
    Env: Object.entries(spec.env).map(([k, v]) => `${k}=${v}`),
    ...(spec.hostname ? { Hostname: spec.hostname } : {}),
    ...(spec.user ? { User: spec.user } : {}),
    ...(spec.workdir ? { WorkingDir: spec.workdir } : {}),
    Labels: {
      ...spec.labels,
      ...spec.containerLabels,
      [TASK_LABELS.serviceId]: service.id,
      [TASK_LABELS.taskId]: task.id,
      [TASK_LABELS.slot]: String(task.slot ?? ""),
    },
    ...(ports.length ? { ExposedPorts: Object.fromEntries(ports.map(([k]) => [k, {}])) } : {}),
    ...(healthcheck ? { Healthcheck: healthcheck } : {}),
    HostConfig: {
      ...(limits.memoryBytes ? { Memory: limits.memoryBytes } : {}),
      ...(limits.nanoCpus ? { NanoCpus: limits.nanoCpus } : {}),
      ...(limits.pids ? { PidsLimit: limits.pids } : {}),
      ...(ports.length ? { PortBindings: Object.fromEntries(ports.map(([k, hostPort]) => [k, [{ HostPort: hostPort }]])) } : {}),
      ...(mounts.length ? { Mounts: mounts } : {}),
    },
    StopTimeout: Math.ceil(spec.stopGracePeriodMs / 1000),
  };
}

/** Where the container's ingress ports answer on its node, from an inspect's NetworkSettings.Ports. */
export function ingressEndpoints(
  spec: ServiceSpec,
  ports: Record<string, { HostIp?: string; HostPort: string }[] | null> | undefined,
): TaskEndpoint[] {
  const out: TaskEndpoint[] = [];
  for (const p of spec.ports.filter(isIngressPort)) {
    const hostPort = Number(ports?.[`${p.target}/${p.protocol}`]?.[0]?.HostPort);
    if (Number.isInteger(hostPort) && hostPort > 0) out.push({ target: p.target, protocol: p.protocol, hostPort });
  }
  return out;
}

/** Runs `fn` over items with at most `parallel` in flight. */
async function inBatches<T>(items: readonly T[], fn: (t: T) => Promise<void>, parallel: number): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await fn(items[next++]);
  };
  await Promise.all(Array.from({ length: Math.min(parallel, items.length) }, worker));
}

@Injectable()
export class DispatchService implements OnModuleInit {
  private readonly logger = new Logger("dispatch");

  constructor(
    private readonly prisma: PrismaService,
    private readonly events: EventsService,
    private readonly queues: QueuesService,
    private readonly engines: EngineClients,
    private readonly services: ServicesRepository,
    private readonly tasks: TasksRepository,
    private readonly handlers: JobHandlers,
    private readonly values: TaskValuesService,
    private readonly taskLogs: TaskLogs,
    @Inject(CLOCK) private readonly clock: Clock,
  ) {}

  onModuleInit(): void {
    this.handlers.register(QUEUE.dispatch, (job: Job) =>
      job.name === "remove"
        ? this.removeContainers(job.data as RemoveContainersJob)
        : this.runNode((job.data as DispatchJob).nodeId, (job.data as DispatchJob).part),
    );
  }

  /** One node's dispatch: start what is assigned there, stop what is no longer wanted (or only one `part` of that). */
  async runNode(nodeId: string, part?: DispatchPart): Promise<{ started: number; stopped: number; rejected: number }> {
    // The node (if ready) and its active tasks in one statement: a LEFT JOIN, so a node without
    // tasks is one row with a null task.
    const read = await this.prisma.sql.query<TaskRow & { nodeHostname: string; nodeEngineUrl: string | null }>(
      `SELECT n.hostname AS "nodeHostname", n."engineUrl" AS "nodeEngineUrl", ${TASK_COLUMNS}
       FROM "Node" n LEFT JOIN "Task" t ON t."nodeId" = n.id AND t.state = ANY($2::"TaskState"[])
       WHERE n.id = $1::uuid AND n.status = ${nodeStatusSql("ready")}`,
      [nodeId, [...ACTIVE_STATES]],
    );
    if (read.length === 0) return { started: 0, stopped: 0, rejected: 0 };
    const node: AgentRef = { hostname: read[0].nodeHostname, engineUrl: read[0].nodeEngineUrl };
    const rows: TaskRow[] = read.filter((r) => r.id !== null).map(({ nodeHostname: _h, nodeEngineUrl: _u, ...t }) => t);
    const byId = new Map(rows.map((t) => [t.id, t]));
    const all = dispatchWork(
      rows.map((t) => ({ task: toCoreTask(t), containerId: t.containerId })),
      this.clock.now(),
    );
    const work = { start: part === "stop" ? [] : all.start, stop: part === "start" ? [] : all.stop };
    const agent = new AgentCalls(node, this.engines);
    const services = await this.loadServices([...work.start, ...work.stop].map((w) => w.task.serviceId));
    const launched = await this.startAll(
      agent,
      work.start.map((w) => byId.get(w.task.id)!),
      services,
    );
    const stopped = await this.stopAll(
      agent,
      work.stop.map((w) => byId.get(w.task.id)!),
      services,
    );
    await this.followUps(launched, stopped, services);
    return {
      started: [...launched.values()].reduce((n, l) => n + l.started, 0),
      stopped: stopped.size,
      rejected: [...launched.values()].reduce((n, l) => n + l.rejected, 0),
    };
  }

  /**
   * Claims the tasks (only one dispatcher wins each), launches them on the agent, and records
   * the outcomes a chunk at a time as they come. Returns per service how many started/failed.
   */
  private async startAll(
    agent: AgentCalls,
    tasks: TaskRow[],
    services: ReadonlyMap<string, ServiceRef>,
  ): Promise<Map<string, { started: number; rejected: number }>> {
    const counts = new Map<string, { started: number; rejected: number }>();
    if (tasks.length === 0) return counts;
    const now = this.clock.now();
    const mine = await this.tasks.claim(
      tasks.map((t) => t.id),
      now,
      now - STALE_CLAIM_MS,
    );
    let chunk: LaunchOutcome[] = [];
    const flush = async () => {
      const batch = chunk;
      chunk = [];
      await this.events.publish(await this.tasks.recordLaunches(batch, this.clock.now()));
    };
    const values = this.values.loader();
    await inBatches(
      tasks.filter((t) => mine.has(t.id) && services.has(t.serviceId)),
      async (task) => {
        const service = services.get(task.serviceId)!;
        const outcome = await agent.launch(service, task, values);
        const c = counts.get(task.serviceId) ?? { started: 0, rejected: 0 };
        if (outcome.containerId) c.started++;
        else c.rejected++;
        counts.set(task.serviceId, c);
        chunk.push(outcome);
        if (chunk.length >= RECORD_CHUNK) await flush();
      },
      PER_AGENT,
    );
    await flush();
    return counts;
  }

  /** Stops (grace, then kill) and removes the containers of tasks no longer wanted; records SHUTDOWN. */
  private async stopAll(agent: AgentCalls, tasks: TaskRow[], services: ReadonlyMap<string, ServiceRef>): Promise<Set<string>> {
    const stopped = new Set<string>();
    await inBatches(
      tasks,
      async (task) => {
        const grace = services.get(task.serviceId) ? specOf(services.get(task.serviceId)!).stopGracePeriodMs : 10_000;
        const r = await agent.stop(task, grace);
        if (r === "unreachable") return;
        // ACCEPTED without a container is a create in flight: its start is stopped on the next pass.
        const from = task.containerId ? DISPATCHED_TASK_STATES : (["ASSIGNED"] as const);
        const evs = await this.tasks.finish(task, [...from], "SHUTDOWN", this.clock.now(), r.exitCode);
        await this.events.publish(evs);
        if (r.log) await this.taskLogs.keep(task.id, r.log);
        if (evs.length) stopped.add(task.serviceId);
      },
      PER_AGENT,
    );
    return stopped;
  }

  /**
   * Started tasks are what a rolling update waits for before its next batch; rejected ones are
   * replaced; a stopped task frees memory and ports that pending tasks may be waiting for.
   */
  private async followUps(
    launched: Map<string, { started: number; rejected: number }>,
    stopped: Set<string>,
    services: ReadonlyMap<string, ServiceRef>,
  ): Promise<void> {
    const again = new Set<string>(stopped);
    for (const [id, c] of launched) {
      const s = services.get(id);
      const updating = s?.updateState != null && isUpdateActive(s.updateState as unknown as UpdateState);
      if (c.rejected > 0 || (c.started > 0 && updating)) again.add(id);
    }
    if (stopped.size > 0) for (const id of await this.services.servicesWaitingForCapacity()) again.add(id);
    for (const id of again) await this.queues.enqueueReconcile(id, stopped.has(id) ? "tasks stopped" : "tasks started");
  }

  /**
   * Stops and removes containers that no task wants (a removed service's, strays). Throws if
   * some are left, so the job is retried (and, once given up, a stray is found again by the
   * node's next full heartbeat fold).
   */
  async removeContainers(job: RemoveContainersJob): Promise<number> {
    const [node] = (
      await this.prisma.sql.query<Parameters<typeof nodeRow>[0]>(`SELECT ${NODE_COLUMNS} FROM "Node" n WHERE n.id = $1::uuid`, [job.nodeId])
    ).map(nodeRow);
    if (!node) return 0;
    const agent = new AgentCalls(node, this.engines);
    // A finished task's container (a stray once its task is over) keeps its log with the task.
    const tasks = await this.taskLogs.tasksOf(job.containers);
    let removed = 0;
    await inBatches(
      job.containers,
      async (id) => {
        const taskId = tasks.get(id);
        if (await agent.remove(id, job.graceMs, taskId ? (log) => this.taskLogs.keep(taskId, log) : undefined)) removed++;
      },
      PER_AGENT,
    );
    if (removed < job.containers.length)
      throw new Error(`${job.containers.length - removed} of ${job.containers.length} containers on ${node.hostname} not removed`);
    return removed;
  }

  /** The services of these tasks, read once per job (plain SQL: a job per node is a hot path). */
  private async loadServices(ids: readonly string[]): Promise<Map<string, ServiceRef>> {
    const unique = [...new Set(ids)];
    if (unique.length === 0) return new Map();
    const rows = await this.prisma.sql.query<ServiceRef>(
      `SELECT id::text AS id, name, spec, "updateState" FROM "Service" WHERE id = ANY($1::uuid[])`,
      [unique],
    );
    return new Map(rows.map((s) => [s.id, s]));
  }
}

/**
 * The calls one dispatch job makes to one agent. Once the agent proved unreachable, the rest
 * fail at once with that error: a blackholed agent costs one timeout per job, not one per task.
 */
class AgentCalls {
  private unreachable?: Error;

  constructor(
    private readonly node: AgentRef,
    private readonly engines: EngineClients,
  ) {}

  /** Creates (idempotently: the name is the task's) and starts a task's container. */
  async launch(service: ServiceRef, task: TaskRow, values: TaskValuesLoader): Promise<LaunchOutcome> {
    const spec = specOf(service);
    try {
      // Secrets and configs travel in the create body only (the agent keeps them off its records).
      const { files, registryAuth } = await values.forTask(service.id, spec);
      const body = { ...containerBody(service, spec, task), ...(files.length ? { FlotillaFiles: files } : {}) };
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
