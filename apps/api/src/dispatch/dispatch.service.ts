// Dispatch: makes the agents do what the task rows say. ASSIGNED tasks are started on their
// node; tasks the orchestrator stopped are stopped (grace period, then kill) and removed; and
// containers no task wants any more (strays, e.g. on a node that comes back after its tasks
// were replaced) are removed. Every state move is conditional on the state read, so a late
// write never moves a task backwards and two dispatchers never both start one task.
import { Injectable, Logger } from "@nestjs/common";
import { isHostPort, isIngressPort, isTerminal, isUpdateActive, type ServiceSpec, type TaskEndpoint, type TaskState, type UpdateState } from "@flotilla/core";
import { EngineConflictError, EngineNotFoundError, TASK_LABELS, type ContainerCreateBody } from "@flotilla/engine-client";
import { PrismaService } from "../database/prisma.service";
import { utc } from "../database/sql";
import { TASK_COLUMNS } from "../database/task-rows";
import { EVENT_RETURNING, eventsFrom, type EventRow } from "../events/event-rows";
import { EventsService } from "../events/events.service";
import type { Node as NodeRow, Service as ServiceRow, Task as TaskRow } from "../generated/prisma/client";
import { QueuesService } from "../queues/queues.service";
import { specOf, taskName } from "../services/mapping";
import { ServicesRepository } from "../services/services.repository";
import { EngineClients } from "./engine-clients";

// A claim older than this with no container means the dispatcher that took it died mid-way;
// creation is idempotent (the container name is the task's), so another may take over.
export const STALE_CLAIM_MS = 30_000;
const PARALLEL = 16;
// Container starts go to many agents at once; each agent sees a few of them.
const LAUNCH_PARALLEL = 64;
// Launch outcomes recorded per statement.
const RECORD_CHUNK = 128;

/** What dispatch needs of a node: where its agent answers. */
export type AgentRef = Pick<NodeRow, "hostname" | "engineUrl">;

/** A container to stop and remove, wherever it came from. */
export interface ContainerRef {
  node: AgentRef;
  containerId: string;
}

/** A task to act on, with its node's agent. */
type TaskOnNode = TaskRow & { node: AgentRef };

/** How one launch ended: a started container, or the agent's error. */
interface Outcome {
  task: TaskOnNode;
  containerId?: string;
  endpoints?: TaskEndpoint[];
  error?: string;
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
    const rows = await this.prisma.sql.query<TaskRow & { nodeHostname: string; nodeEngineUrl: string | null }>(
      `SELECT ${TASK_COLUMNS}, n.hostname AS "nodeHostname", n."engineUrl" AS "nodeEngineUrl"
       FROM "Task" t JOIN "Node" n ON n.id = t."nodeId"
       WHERE t."serviceId" = $1::uuid AND n.status = 'READY'::"NodeStatus" AND (
         (t."desiredState" = 'RUNNING'::"DesiredTaskState" AND t.state = 'ASSIGNED'::"TaskState")
         OR (t."desiredState" = 'RUNNING'::"DesiredTaskState" AND t.state = 'ACCEPTED'::"TaskState" AND t."containerId" IS NULL AND t."updatedAt" < $2::timestamp(3))
         OR (t."desiredState" = 'SHUTDOWN'::"DesiredTaskState" AND t.state IN ('ASSIGNED', 'ACCEPTED', 'PREPARING', 'STARTING', 'RUNNING')))`,
      [serviceId, utc(Date.now() - STALE_CLAIM_MS)],
    );
    const tasks: TaskOnNode[] = rows.map(({ nodeHostname, nodeEngineUrl, ...t }) => ({ ...t, node: { hostname: nodeHostname, engineUrl: nodeEngineUrl } }));
    const spec = specOf(service);
    const stops = tasks.filter((t) => t.desiredState !== "RUNNING");
    const started = await this.startAll(service, spec, tasks.filter((t) => t.desiredState === "RUNNING"));
    let stopped = 0;
    await inBatches(stops, async (t) => {
      if (await this.stopTask(t, t.node, spec.stopGracePeriodMs)) stopped++;
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
   * one dispatcher wins a task), creates and starts the containers in parallel, and records the
   * outcomes as they come (see record; REJECTED ones the orchestrator replaces). Returns how
   * many run.
   */
  private async startAll(service: ServiceRow, spec: ServiceSpec, tasks: TaskOnNode[]): Promise<number> {
    if (tasks.length === 0) return 0;
    const now = Date.now();
    const claimed = await this.prisma.sql.query<{ id: string }>(
      `UPDATE "Task" SET state = 'ACCEPTED'::"TaskState", "updatedAt" = $2::timestamp(3)
       WHERE id = ANY($1::uuid[]) AND "desiredState" = 'RUNNING'::"DesiredTaskState"
         AND (state = 'ASSIGNED'::"TaskState" OR (state = 'ACCEPTED'::"TaskState" AND "containerId" IS NULL AND "updatedAt" < $3::timestamp(3)))
       RETURNING id::text AS id`,
      [tasks.map((t) => t.id), utc(now), utc(now - STALE_CLAIM_MS)],
    );
    const mine = new Set(claimed.map((c) => c.id));
    // Outcomes are recorded as they come, a chunk at a time, rather than once every launch of a
    // thousand is done: tasks count as running sooner, and heartbeats that arrive meanwhile find
    // them RUNNING already instead of each writing the same move themselves.
    let chunk: Outcome[] = [];
    let recorded: Promise<unknown> = Promise.resolve();
    let failure: unknown;
    let running = 0;
    let rejected = 0;
    const flush = () => {
      const batch = chunk;
      chunk = [];
      // A chunk that cannot be written stays ACCEPTED (a heartbeat or a later pass takes it
      // over); the others are still written, and the error surfaces once all are done.
      recorded = recorded.then(() => this.record(service, batch).catch((e: unknown) => (failure ??= e)));
    };
    await inBatches(
      tasks.filter((t) => mine.has(t.id)),
      async (task) => {
        let outcome: Outcome;
        try {
          outcome = { task, ...(await this.launch(service, spec, task, task.node)) };
          running++;
        } catch (e) {
          this.logger.warn(`task ${task.id} on ${task.node.hostname}: ${(e as Error).message}`);
          outcome = { task, error: (e as Error).message };
          rejected++;
        }
        // Into the chunk being filled now: it may have been flushed while this launch ran.
        chunk.push(outcome);
        if (chunk.length >= RECORD_CHUNK) flush();
      },
      LAUNCH_PARALLEL,
    );
    if (chunk.length) flush();
    await recorded;
    if (failure) throw failure;
    if (rejected > 0) await this.queues.enqueueReconcile(service.id, "task rejected");
    return running;
  }

  /**
   * Records launch outcomes — RUNNING with the container id (the agent said it started; the
   * heartbeat confirms it or reports the exit), or REJECTED with the agent's error — and their
   * events, in one statement. Only tasks still ACCEPTED move: a heartbeat may have been faster
   * (a claim abandoned for STALE_CLAIM_MS), in which case only the endpoints are recorded.
   */
  private async record(service: ServiceRow, outcomes: Outcome[]): Promise<void> {
    const at = utc(Date.now());
    const rows = await this.prisma.sql.query<EventRow>(
      `WITH v AS (
         SELECT * FROM unnest($2::uuid[], $3::text[], $4::text[], $5::text[], $6::text[], $7::jsonb[]) WITH ORDINALITY AS v(id, next, cid, ep, err, ev, n)),
       moved AS (
         UPDATE "Task" t SET state = v.next::"TaskState", "containerId" = coalesce(v.cid, t."containerId"),
           endpoints = CASE WHEN v.next = 'RUNNING' THEN v.ep::jsonb ELSE t.endpoints END,
           error = CASE WHEN v.next = 'REJECTED' THEN v.err ELSE t.error END,
           "startedAt" = CASE WHEN v.next = 'RUNNING' THEN $1::timestamp(3) ELSE t."startedAt" END,
           "finishedAt" = CASE WHEN v.next = 'REJECTED' THEN $1::timestamp(3) ELSE t."finishedAt" END,
           "updatedAt" = $1::timestamp(3)
         FROM v WHERE t.id = v.id AND t.state = 'ACCEPTED'::"TaskState"
         RETURNING t.id, v.ev, v.n),
       -- The mesh's backends even where a heartbeat moved the task first, as long as it is still
       -- this container (disjoint from the rows above: those were ACCEPTED in this snapshot).
       meshed AS (
         UPDATE "Task" t SET endpoints = v.ep::jsonb
         FROM v WHERE t.id = v.id AND v.ep IS NOT NULL AND t.state <> 'ACCEPTED'::"TaskState" AND t."containerId" = v.cid)
       INSERT INTO "Event" (at, kind, "subjectId", action, data)
       SELECT $1::timestamp(3), 'task', m.id::text, 'state', m.ev FROM moved m ORDER BY m.n
       ${EVENT_RETURNING}`,
      [
        at,
        outcomes.map((o) => o.task.id),
        outcomes.map((o) => (o.containerId ? "RUNNING" : "REJECTED")),
        outcomes.map((o) => o.containerId ?? null),
        outcomes.map((o) => (o.endpoints ? JSON.stringify(o.endpoints) : null)),
        outcomes.map((o) => (o.containerId ? null : (o.error ?? "rejected"))),
        outcomes.map((o) =>
          JSON.stringify({ serviceId: service.id, slot: o.task.slot, state: o.containerId ? "RUNNING" : "REJECTED", node: o.task.node.hostname, ...(o.containerId ? {} : { error: o.error }) }),
        ),
      ],
    );
    await this.events.publish(eventsFrom(rows));
  }

  /**
   * Creates (idempotently: the name is the task's) and starts one task's container; for a
   * service with ingress ports, also reads back the dynamic host ports the mesh routes to.
   */
  private async launch(service: ServiceRow, spec: ServiceSpec, task: TaskRow, node: AgentRef): Promise<{ containerId: string; endpoints?: TaskEndpoint[] }> {
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
  async stopTask(task: TaskRow, node: AgentRef, graceMs: number): Promise<boolean> {
    if (!task.containerId) {
      // Never reached an agent: nothing to stop. (ACCEPTED without a container is a create in
      // flight; leave it to that dispatcher, whose start will be stopped on the next pass.)
      return task.state === "ASSIGNED" && this.move(task, ["ASSIGNED"], { state: "SHUTDOWN", finishedAt: new Date() });
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
    return this.move(task, ["ACCEPTED", "PREPARING", "STARTING", "RUNNING"], { state: "SHUTDOWN", finishedAt: new Date(), ...(exitCode !== undefined ? { exitCode } : {}) });
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
  private async move(task: TaskRow, from: TaskState[], to: { state: TaskState; finishedAt: Date; exitCode?: number }): Promise<boolean> {
    const at = utc(Date.now());
    // One statement, so the move and its event are one transaction without a held connection.
    const rows = await this.prisma.sql.query<EventRow>(
      `WITH moved AS (
         UPDATE "Task" SET state = $2::"TaskState", "finishedAt" = $3::timestamp(3), "exitCode" = coalesce($4, "exitCode"), "updatedAt" = $5::timestamp(3)
         WHERE id = $1::uuid AND state = ANY($6::"TaskState"[]) RETURNING id)
       INSERT INTO "Event" (at, kind, "subjectId", action, data)
       SELECT $5::timestamp(3), 'task', moved.id::text, 'state', $7::jsonb FROM moved
       ${EVENT_RETURNING}`,
      [task.id, to.state, utc(to.finishedAt), to.exitCode ?? null, at, from, JSON.stringify({ serviceId: task.serviceId, slot: task.slot, state: to.state })],
    );
    if (rows.length === 0) return false;
    await this.events.publish(eventsFrom(rows));
    if (isTerminal(to.state) && to.state !== "SHUTDOWN") await this.queues.enqueueReconcile(task.serviceId, `task ${to.state.toLowerCase()}`);
    return true;
  }
}
