// Dispatch: makes the agents do what the task rows say. ASSIGNED tasks are started on their
// node; tasks the orchestrator stopped are stopped (grace period, then kill) and removed; and
// containers no task wants any more (strays, e.g. on a node that comes back after its tasks
// were replaced) are removed. Every state move is conditional on the state read, so a late
// write never moves a task backwards and two dispatchers never both start one task.
import { Injectable, Logger } from "@nestjs/common";
import { isHostPort, isIngressPort, isTerminal, isUpdateActive, type ServiceSpec, type TaskEndpoint, type TaskState, type UpdateState } from "@flotilla/core";
import { EngineConflictError, EngineNotFoundError, TASK_LABELS, type ContainerCreateBody } from "@flotilla/engine-client";
import { PrismaService } from "../database/prisma.service";
import { EventsService, type EventInput } from "../events/events.service";
import { publishAll, recordEvents } from "../services/record-events";
import type { Node as NodeRow, Prisma, Service as ServiceRow, Task as TaskRow } from "../generated/prisma/client";
import { QueuesService } from "../queues/queues.service";
import { specOf, taskName, TX_OPTIONS } from "../services/mapping";
import { ServicesRepository } from "../services/services.repository";
import { EngineClients } from "./engine-clients";

// A claim older than this with no container means the dispatcher that took it died mid-way;
// creation is idempotent (the container name is the task's), so another may take over.
const STALE_CLAIM_MS = 30_000;
const PARALLEL = 16;
// Container starts go to many agents at once; each agent sees a few of them.
const LAUNCH_PARALLEL = 64;

/** A container to stop and remove, wherever it came from. */
export interface ContainerRef {
  node: Pick<NodeRow, "hostname" | "engineUrl">;
  containerId: string;
}

/** The Engine API create body for a task of `service`. */
export function containerBody(service: Pick<ServiceRow, "id">, spec: ServiceSpec, task: Pick<TaskRow, "id" | "slot">): ContainerCreateBody {
  // Ingress ports take a dynamic host port: the mesh on every node forwards the published port
  // to it. Host ports are the published port itself.
  const ports = spec.ports.map((p) => [`${p.target}/${p.protocol}`, isHostPort(p) ? String(p.published) : ""] as const);
  const limits = spec.resources.limits;
  return {
    Image: spec.image,
    ...(spec.command.length ? { Entrypoint: [...spec.command] } : {}),
    ...(spec.args.length ? { Cmd: [...spec.args] } : {}),
    Env: Object.entries(spec.env).map(([k, v]) => `${k}=${v}`),
    Labels: { ...spec.labels, [TASK_LABELS.serviceId]: service.id, [TASK_LABELS.taskId]: task.id, [TASK_LABELS.slot]: String(task.slot ?? "") },
    ...(ports.length ? { ExposedPorts: Object.fromEntries(ports.map(([k]) => [k, {}])) } : {}),
    HostConfig: {
      ...(limits.memoryBytes ? { Memory: limits.memoryBytes } : {}),
      ...(limits.nanoCpus ? { NanoCpus: limits.nanoCpus } : {}),
      ...(limits.pids ? { PidsLimit: limits.pids } : {}),
      ...(ports.length ? { PortBindings: Object.fromEntries(ports.map(([k, hostPort]) => [k, [{ HostPort: hostPort }]])) } : {}),
    },
    StopTimeout: Math.ceil(spec.stopGracePeriodMs / 1000),
  };
}

/** Where the container's ingress ports answer on its node, from an inspect's NetworkSettings.Ports. */
export function ingressEndpoints(spec: ServiceSpec, ports: Record<string, { HostIp?: string; HostPort: string }[] | null> | undefined): TaskEndpoint[] {
  const out: TaskEndpoint[] = [];
  for (const p of spec.ports.filter(isIngressPort)) {
    const hostPort = Number(ports?.[`${p.target}/${p.protocol}`]?.[0]?.HostPort);
    if (Number.isInteger(hostPort) && hostPort > 0) out.push({ target: p.target, protocol: p.protocol, hostPort });
  }
  return out;
}

/** Runs `fn` over items with at most `parallel` in flight. */
async function inBatches<T>(items: readonly T[], fn: (t: T) => Promise<void>, parallel = PARALLEL): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await fn(items[next++]);
  };
  await Promise.all(Array.from({ length: Math.min(parallel, items.length) }, worker));
}

@Injectable()
export class DispatchService {
  private readonly logger = new Logger("dispatch");
  private readonly removing = new Set<string>();

  constructor(
    private readonly prisma: PrismaService,
    private readonly events: EventsService,
    private readonly queues: QueuesService,
    private readonly engines: EngineClients,
    private readonly services: ServicesRepository,
  ) {}

  /** Starts the service's assigned tasks and stops those it no longer wants, on ready nodes. */
  async syncService(serviceId: string): Promise<void> {
    const service = await this.prisma.service.findUnique({ where: { id: serviceId } });
    if (!service) return;
    const tasks = await this.prisma.task.findMany({
      where: {
        serviceId,
        node: { status: "READY" },
        OR: [
          { desiredState: "RUNNING", state: "ASSIGNED" },
          { desiredState: "RUNNING", state: "ACCEPTED", containerId: null, updatedAt: { lt: new Date(Date.now() - STALE_CLAIM_MS) } },
          { desiredState: "SHUTDOWN", state: { in: ["ASSIGNED", "ACCEPTED", "PREPARING", "STARTING", "RUNNING"] } },
        ],
      },
      include: { node: true },
    });
    const spec = specOf(service);
    const stops = tasks.filter((t) => t.desiredState !== "RUNNING");
    const started = await this.startAll(service, spec, tasks.filter((t) => t.desiredState === "RUNNING"));
    let stopped = 0;
    await inBatches(stops, async (t) => {
      if (await this.stopTask(t, t.node!, spec.stopGracePeriodMs)) stopped++;
    });
    // Tasks running is what a rolling update waits for before its next batch; a stopped task
    // frees memory and host ports that pending tasks (of any service) may be waiting for.
    const updating = service.updateState !== null && isUpdateActive(service.updateState as unknown as UpdateState);
    const again = new Set((started > 0 && updating) || stopped > 0 ? [serviceId] : []);
    if (stopped > 0) for (const id of await this.services.servicesWaitingForCapacity()) again.add(id);
    for (const id of again) await this.queues.enqueueReconcile(id, started ? "tasks started" : "tasks stopped");
  }

  /**
   * Starts tasks on their agents: claims them all in one statement (ASSIGNED → ACCEPTED; only
   * one dispatcher wins a task), creates and starts the containers in parallel, then records
   * the outcomes in one transaction — RUNNING with the container id, or REJECTED with the
   * agent's error (the orchestrator replaces those). Returns how many run.
   */
  private async startAll(service: ServiceRow, spec: ServiceSpec, tasks: (TaskRow & { node: NodeRow | null })[]): Promise<number> {
    if (tasks.length === 0) return 0;
    const cutoff = new Date(Date.now() - STALE_CLAIM_MS);
    const claimed = await this.prisma.$queryRaw<{ id: string }[]>`
      UPDATE "Task" SET state = 'ACCEPTED'::"TaskState", "updatedAt" = now()
      WHERE id = ANY(${tasks.map((t) => t.id)}::uuid[]) AND "desiredState" = 'RUNNING'::"DesiredTaskState"
        AND (state = 'ASSIGNED'::"TaskState" OR (state = 'ACCEPTED'::"TaskState" AND "containerId" IS NULL AND "updatedAt" < ${cutoff}))
      RETURNING id::text AS id`;
    const mine = new Set(claimed.map((c) => c.id));
    const outcomes: { task: TaskRow; node: NodeRow; containerId?: string; endpoints?: TaskEndpoint[]; error?: string }[] = [];
    await inBatches(
      tasks.filter((t) => mine.has(t.id)),
      async (task) => {
        const node = task.node!;
        try {
          outcomes.push({ task, node, ...(await this.launch(service, spec, task, node)) });
        } catch (e) {
          this.logger.warn(`task ${task.id} on ${node.hostname}: ${(e as Error).message}`);
          outcomes.push({ task, node, error: (e as Error).message });
        }
      },
      LAUNCH_PARALLEL,
    );
    const at = new Date();
    const ok = outcomes.filter((o) => o.containerId);
    const failed = outcomes.filter((o) => !o.containerId);
    // Two statements for the whole batch, not one per task: a connection held for a thousand
    // round trips starves the heartbeats. The agent said the containers started: RUNNING now
    // rather than a heartbeat later (the heartbeat confirms it or reports the exit; states only
    // move forward). Only tasks still ACCEPTED move — a heartbeat may have been faster.
    const evs = await this.prisma.$transaction(async (tx) => {
      const ran = ok.length
        ? await tx.$queryRaw<{ id: string }[]>`
            UPDATE "Task" t SET state = 'RUNNING'::"TaskState", "containerId" = v.cid, "startedAt" = ${at}, "updatedAt" = ${at}
            FROM unnest(${ok.map((o) => o.task.id)}::uuid[], ${ok.map((o) => o.containerId!)}::text[]) AS v(id, cid)
            WHERE t.id = v.id AND t.state = 'ACCEPTED'::"TaskState"
            RETURNING t.id::text AS id`
        : [];
      // The mesh's backends, whatever state the task reached meanwhile (a heartbeat may have
      // moved it to RUNNING first), as long as it is still this container.
      const meshed = ok.filter((o) => o.endpoints);
      if (meshed.length) {
        await tx.$executeRaw`
          UPDATE "Task" t SET endpoints = v.ep::jsonb
          FROM unnest(${meshed.map((o) => o.task.id)}::uuid[], ${meshed.map((o) => o.containerId!)}::text[], ${meshed.map((o) => JSON.stringify(o.endpoints))}::text[]) AS v(id, cid, ep)
          WHERE t.id = v.id AND t."containerId" = v.cid`;
      }
      const events: EventInput[] = [];
      const ranIds = new Set(ran.map((r) => r.id));
      for (const o of ok) {
        if (ranIds.has(o.task.id)) events.push({ kind: "task", subjectId: o.task.id, action: "state", data: { serviceId: service.id, slot: o.task.slot, state: "RUNNING", node: o.node.hostname } });
      }
      for (const o of failed) {
        const n = await tx.task.updateMany({ where: { id: o.task.id, state: "ACCEPTED" }, data: { state: "REJECTED", error: o.error ?? "rejected", finishedAt: at } });
        if (n.count) events.push({ kind: "task", subjectId: o.task.id, action: "state", data: { serviceId: service.id, slot: o.task.slot, state: "REJECTED", node: o.node.hostname, error: o.error } });
      }
      return events.length ? recordEvents(tx, events) : [];
    }, TX_OPTIONS);
    const running = ok.length;
    const rejected = failed.length;
    await publishAll(this.events, evs);
    if (rejected > 0) await this.queues.enqueueReconcile(service.id, "task rejected");
    return running;
  }

  /**
   * Creates (idempotently: the name is the task's) and starts one task's container; for a
   * service with ingress ports, also reads back the dynamic host ports the mesh routes to.
   */
  private async launch(service: ServiceRow, spec: ServiceSpec, task: TaskRow, node: NodeRow): Promise<{ containerId: string; endpoints?: TaskEndpoint[] }> {
    const engine = await this.engines.forNode(node);
    const name = `${taskName(service.name, task)}.${task.id}`;
    let containerId: string;
    try {
      containerId = await engine.createContainer(name, containerBody(service, spec, task));
    } catch (e) {
      // A previous attempt created it (this one took over a stale claim): use that container.
      if (!(e instanceof EngineConflictError)) throw e;
      containerId = (await engine.inspectContainer(name)).Id;
    }
    await engine.startContainer(containerId);
    if (!spec.ports.some(isIngressPort)) return { containerId };
    return { containerId, endpoints: ingressEndpoints(spec, (await engine.inspectContainer(containerId)).NetworkSettings?.Ports) };
  }

  /** Stops (grace, then kill) and removes a task's container, then records SHUTDOWN. */
  async stopTask(task: TaskRow, node: NodeRow, graceMs: number): Promise<boolean> {
    if (!task.containerId) {
      // Never reached an agent: nothing to stop. (ACCEPTED without a container is a create in
      // flight; leave it to that dispatcher, whose start will be stopped on the next pass.)
      return task.state === "ASSIGNED" && this.move(task, ["ASSIGNED"], { state: "SHUTDOWN", finishedAt: new Date() }, {});
    }
    let exitCode: number | undefined;
    try {
      const engine = await this.engines.forNode(node);
      await engine.stopContainer(task.containerId, graceMs / 1000);
      exitCode = (await engine.inspectContainer(task.containerId)).State.ExitCode;
      await engine.removeContainer(task.containerId, true);
    } catch (e) {
      if (!(e instanceof EngineNotFoundError)) {
        this.logger.warn(`stop task ${task.id} on ${node.hostname}: ${(e as Error).message}`);
        return false;
      }
    }
    return this.move(task, ["ACCEPTED", "PREPARING", "STARTING", "RUNNING"], { state: "SHUTDOWN", finishedAt: new Date(), ...(exitCode !== undefined ? { exitCode } : {}) }, {});
  }

  /** Stops and removes containers that no task wants (removed services, strays). Best effort. */
  async stopContainers(refs: readonly ContainerRef[], graceMs: number): Promise<void> {
    await inBatches(
      refs.filter((r) => !this.removing.has(r.containerId)),
      async ({ node, containerId }) => {
        this.removing.add(containerId);
        try {
          const engine = await this.engines.forNode(node);
          await engine.stopContainer(containerId, graceMs / 1000).catch((e: unknown) => {
            if (!(e instanceof EngineNotFoundError)) throw e;
          });
          await engine.removeContainer(containerId, true);
        } catch (e) {
          if (!(e instanceof EngineNotFoundError)) this.logger.warn(`remove container ${containerId} on ${node.hostname}: ${(e as Error).message}`);
        } finally {
          this.removing.delete(containerId);
        }
      },
    );
  }

  /**
   * Moves a task if it is still in one of `from` states; records a task event in the same
   * transaction. Returns whether it moved.
   */
  private async move(task: TaskRow, from: TaskState[], data: Prisma.TaskUncheckedUpdateManyInput, detail: Record<string, unknown>): Promise<boolean> {
    const evs = await this.prisma.$transaction(async (tx) => {
      const n = await tx.task.updateMany({ where: { id: task.id, state: { in: from } }, data });
      if (n.count === 0) return null;
      return this.events.record(tx, [{ kind: "task", subjectId: task.id, action: "state", data: { serviceId: task.serviceId, slot: task.slot, state: data.state, ...detail } }]);
    }, TX_OPTIONS);
    if (!evs) return false;
    await this.events.publish(evs);
    if (typeof data.state === "string" && isTerminal(data.state as TaskState) && data.state !== "SHUTDOWN") {
      await this.queues.enqueueReconcile(task.serviceId, `task ${String(data.state).toLowerCase()}`);
    }
    return true;
  }
}
