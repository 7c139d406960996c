// Agent heartbeats: the first registers the node, each marks it ready and reports its
// containers, which are folded into task states (forward only, libs/core foldContainerState).
// Containers no task wants — a node back after its tasks were replaced — are removed.
import { Inject, Injectable, Logger } from "@nestjs/common";
import { foldContainerState, isTerminal, type ContainerObservation, type Task, type TaskState } from "@flotilla/core";
import { TASK_LABELS } from "@flotilla/engine-client";
import { z } from "zod";
import { PrismaService } from "../database/prisma.service";
import { utc } from "../database/sql";
import { TASK_COLUMNS } from "../database/task-rows";
import { DispatchService, STALE_CLAIM_MS } from "../dispatch/dispatch.service";
import { EVENT_RETURNING, eventsFrom, type EventRow } from "../events/event-rows";
import { EventsService } from "../events/events.service";
import type { Node as NodeRow, Task as TaskRow } from "../generated/prisma/client";
import { QueuesService } from "../queues/queues.service";
import { ACTIVE_STATES, toCoreTask, TX_OPTIONS } from "../services/mapping";
import { ServicesRepository } from "../services/services.repository";
import { IngressService, type IngressTable } from "../ingress/ingress.service";
import { Batcher } from "./batcher";
import { HEARTBEAT_CONFIG, MISSED_BEATS, type HeartbeatConfig } from "./heartbeat-config";

export const HeartbeatBody = z.object({
  nodeId: z.string().uuid().optional(),
  hostname: z.string().min(1).max(253),
  engineUrl: z.string().regex(/^(https?|unix):\/\//, "must be an http://, https:// or unix:// URL"),
  resources: z.object({ nanoCpus: z.number().int().min(0), memoryBytes: z.number().int().min(0) }),
  labels: z.record(z.string(), z.string()).default({}),
  /** The ingress table the agent applied last: the reply carries a table only when it changed. */
  ingressVersion: z.string().max(200).optional(),
  containers: z
    .array(
      z.object({
        id: z.string().min(1),
        labels: z.record(z.string(), z.string()).default({}),
        state: z.enum(["created", "running", "exited"]),
        exitCode: z.number().int().optional(),
        oomKilled: z.boolean().optional(),
        startedAt: z.string().optional(),
        finishedAt: z.string().optional(),
      }),
    )
    .max(100_000),
});
export type HeartbeatBody = z.infer<typeof HeartbeatBody>;

/** What an agent learns from a heartbeat. */
export interface HeartbeatReply {
  nodeId: string;
  heartbeatMs: number;
  /** The routing mesh's table, when the agent's is out of date. */
  ingress?: IngressTable;
}

type Reported = HeartbeatBody["containers"][number];
/** What heartbeat handling needs of a node. */
type NodeRef = Pick<NodeRow, "id" | "hostname" | "engineUrl">;
/** A ready node marked alive, and its active tasks when they were asked for. */
interface Touched {
  node: NodeRef;
  active?: TaskRow[];
}
/** What a fold leaves for the next one. */
interface Folded {
  /** Tasks whose containers the report lacked: gone for good if the next one lacks them too. */
  missing: ReadonlySet<string>;
  /** A task was left to the dispatcher that claimed it. */
  deferred: boolean;
}
const FULL_FOLD_BEATS = 6;
// Touch batches in flight at once, and beats per batch at most (see Batcher).
const TOUCH_BATCHES = 2;
const TOUCH_BATCH_MAX = 200;

function observation(c: Reported): ContainerObservation {
  if (c.state === "running") return { kind: "running" };
  if (c.state === "created") return { kind: "created" };
  if (c.oomKilled) return { kind: "oom", ...(c.exitCode !== undefined ? { exitCode: c.exitCode } : {}) };
  return { kind: "exited", exitCode: c.exitCode ?? 0 };
}

@Injectable()
export class HeartbeatsService {
  private readonly logger = new Logger("heartbeats");
  /**
   * Per host name: the last report folded, the tasks whose containers it lacked, and whether it
   * left a task to its dispatcher (then the next report is folded even if identical).
   */
  private readonly lastReport = new Map<string, { digest: string; at: number } & Folded>();
  private readonly touches = new Batcher<{ hb: HeartbeatBody; withTasks: boolean }, Touched | null>((items) => this.touchReady(items), {
    maxInFlight: TOUCH_BATCHES,
    maxBatch: TOUCH_BATCH_MAX,
    key: (i) => i.hb.hostname,
  });

  constructor(
    private readonly prisma: PrismaService,
    private readonly events: EventsService,
    private readonly queues: QueuesService,
    private readonly services: ServicesRepository,
    private readonly dispatch: DispatchService,
    private readonly ingress: IngressService,
    @Inject(HEARTBEAT_CONFIG) private readonly config: HeartbeatConfig,
  ) {}

  async beat(hb: HeartbeatBody): Promise<HeartbeatReply> {
    const now = Date.now();
    // An identical report changes nothing we do not already know, except a container that
    // vanished behind our back, which a full pass every FULL_FOLD_BEATS beats still catches.
    // Keyed by host name: the node's id is only known once the touch below returns.
    const digest = hb.containers.map((c) => `${c.id}:${c.state}:${c.exitCode ?? ""}`).sort().join(",");
    const last = this.lastReport.get(hb.hostname);
    const stale = !(last?.digest === digest && last.missing.size === 0 && !last.deferred && now - last.at < FULL_FOLD_BEATS * this.config.periodMs);
    const { node, active } = await this.touch(hb, stale);
    // Back or new (no tasks read by the touch): whatever it reports is looked at in full, as
    // strays of replaced tasks may be among it.
    if (stale || !active) {
      const folded = await this.fold(node, hb.containers, active ?? (await this.activeTasks(node.id)), now, last?.missing ?? new Set());
      this.lastReport.set(hb.hostname, { digest, at: now, ...folded });
    }
    const ingress = await this.ingress.tableFor(hb.ingressVersion);
    return { nodeId: node.id, heartbeatMs: this.config.periodMs, ...(ingress ? { ingress } : {}) };
  }

  /**
   * Marks the node alive; registers it on first contact. The steady state — a ready node
   * beating again — is a share of one batched statement (touchReady), which also reads the
   * node's active tasks when asked to (`active` is then set; [] when they were not asked for).
   */
  private async touch(hb: HeartbeatBody, withTasks: boolean): Promise<Touched> {
    const now = new Date();
    const live = { engineUrl: hb.engineUrl, cpuNanos: BigInt(hb.resources.nanoCpus), memoryBytes: BigInt(hb.resources.memoryBytes), lastHeartbeatAt: now };
    const touched = await this.touches.call({ hb, withTasks });
    if (touched && (!hb.nodeId || touched.node.id === hb.nodeId)) return touched;

    const { node, evs } = await this.prisma.$transaction(async (tx) => {
      const existing = await tx.node.findUnique({ where: { hostname: hb.hostname } });
      if (!existing) {
        // Labels come from the agent only at registration; afterwards the operator owns them.
        const node = await tx.node.create({ data: { hostname: hb.hostname, labels: hb.labels, status: "READY", ...live } });
        const evs = await this.events.record(tx, [{ kind: "node", subjectId: node.id, action: "register", data: { hostname: node.hostname, engineUrl: hb.engineUrl } }]);
        return { node, evs };
      }
      const node = await tx.node.update({ where: { id: existing.id }, data: { ...live, status: "READY" } });
      const evs = await this.events.record(tx, [{ kind: "node", subjectId: node.id, action: "ready", data: { hostname: node.hostname, was: existing.status.toLowerCase() } }]);
      return { node, evs };
    }, TX_OPTIONS).catch(async (e: unknown) => {
      // Two first heartbeats racing: the unique hostname lets one register; the other retries.
      if ((e as { code?: string }).code !== "P2002") throw e;
      return { node: (await this.prisma.node.findUnique({ where: { hostname: hb.hostname } }))!, evs: [] };
    });
    await this.events.publish(evs);
    // New capacity: pending tasks may fit now, global services want a task here.
    for (const id of await this.services.servicesWaitingForCapacity()) await this.queues.enqueueReconcile(id, `node ${node.hostname} ready`);
    return { node };
  }

  /**
   * One statement for a batch of beats from ready nodes: marks them alive and reads the active
   * tasks of those whose reports are to be folded. Answers null for a node that is not READY
   * (or unknown): that beat takes the registration path.
   */
  private async touchReady(items: { hb: HeartbeatBody; withTasks: boolean }[]): Promise<(Touched | null)[]> {
    const rows = await retryDeadlock(() =>
      this.prisma.sql.query<TaskRow & { node: string; nodeHostname: string; nodeEngineUrl: string | null }>(
        `WITH v AS (SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[], $5::boolean[]) AS v(hostname, url, cpu, mem, fold)),
         n AS (
           UPDATE "Node" AS node SET "engineUrl" = v.url, "cpuNanos" = v.cpu, "memoryBytes" = v.mem,
             "lastHeartbeatAt" = $6::timestamp(3), "updatedAt" = $6::timestamp(3)
           FROM v WHERE node.hostname = v.hostname AND node.status = 'READY'::"NodeStatus"
           RETURNING node.id, node.hostname, node."engineUrl", v.fold)
         SELECT n.id::text AS node, n.hostname AS "nodeHostname", n."engineUrl" AS "nodeEngineUrl", ${TASK_COLUMNS}
         FROM n LEFT JOIN "Task" t ON n.fold AND t."nodeId" = n.id AND t.state = ANY($7::"TaskState"[])`,
        [
          items.map((i) => i.hb.hostname),
          items.map((i) => i.hb.engineUrl),
          items.map((i) => i.hb.resources.nanoCpus),
          items.map((i) => i.hb.resources.memoryBytes),
          items.map((i) => i.withTasks),
          utc(Date.now()),
          [...ACTIVE_STATES],
        ],
      ),
    );
    // A LEFT JOIN: a node without tasks (or not asked for them) comes back as one null-task row.
    const byHost = new Map<string, Touched>();
    for (const { node, nodeHostname, nodeEngineUrl, ...task } of rows) {
      let t = byHost.get(nodeHostname);
      if (!t) byHost.set(nodeHostname, (t = { node: { id: node, hostname: nodeHostname, engineUrl: nodeEngineUrl }, active: [] }));
      if (task.id !== null) t.active!.push(task);
    }
    return items.map((i) => byHost.get(i.hb.hostname) ?? null);
  }

  private activeTasks(nodeId: string): Promise<TaskRow[]> {
    return this.prisma.sql.query<TaskRow>(`SELECT ${TASK_COLUMNS} FROM "Task" t WHERE t."nodeId" = $1::uuid AND t.state = ANY($2::"TaskState"[])`, [nodeId, [...ACTIVE_STATES]]);
  }

  /** Folds reported container states into this node's tasks and removes strays. */
  private async fold(node: NodeRef, containers: Reported[], active: TaskRow[], now: number, missingBefore: ReadonlySet<string>): Promise<Folded> {
    const reported = new Map<string, Reported>();
    for (const c of containers) {
      const taskId = c.labels[TASK_LABELS.taskId];
      if (taskId) reported.set(taskId, c);
    }
    const activeById = new Map(active.map((t) => [t.id, t]));
    const changes: { row: TaskRow; next: Task; containerId?: string }[] = [];
    const missing = new Set<string>();
    let deferred = false;
    // A report is read some time after the agent built it — much later when the control plane
    // is busy — so it may predate a container the dispatcher just started. A container counts
    // as vanished (the agent lost it, or it was removed behind our back) only once it is missing
    // from two reports in a row, for a task that has run longer than a silent node has to live.
    const settled = now - MISSED_BEATS * this.config.periodMs;

    for (const t of active) {
      const c = reported.get(t.id);
      // A fresh claim belongs to a dispatcher that is starting the container right now and
      // records the outcome itself; a report of that container would only race it. A stale
      // claim (the dispatcher died) is folded like any task.
      if (t.state === "ACCEPTED" && t.updatedAt.getTime() > now - STALE_CLAIM_MS) {
        deferred = true;
        continue;
      }
      const before = toCoreTask(t);
      if (c) {
        const next = foldContainerState(before, observation(c), now);
        if (next !== before || t.containerId !== c.id) changes.push({ row: t, next, containerId: c.id });
      } else if (t.containerId && (t.state === "RUNNING" || t.state === "STARTING")) {
        missing.add(t.id);
        if (!missingBefore.has(t.id) || t.updatedAt.getTime() >= settled) continue;
        const next = foldContainerState(before, { kind: "removed" }, now);
        if (next !== before) {
          this.logger.warn(`task ${t.id}: container ${t.containerId.slice(0, 12)} missing from ${node.hostname}'s reports (task ${t.state} since ${t.updatedAt.toISOString()})`);
          changes.push({ row: t, next });
        }
      }
    }
    if (changes.length) await this.write(changes);

    // Strays: containers whose task is gone or finished (e.g. orphaned while the node was away).
    const strays = containers.filter((c) => {
      const taskId = c.labels[TASK_LABELS.taskId];
      return taskId !== undefined && !activeById.has(taskId);
    });
    if (strays.length) void this.dispatch.stopContainers(strays.map((c) => ({ node, containerId: c.id })), 10_000);
    return { missing, deferred };
  }

  /**
   * Writes the folded states and their events in one statement (so one transaction, without a
   * connection held across round trips), each move conditional on the state that was read:
   * forward only, even against a concurrent writer such as dispatch.
   */
  private async write(changes: { row: TaskRow; next: Task; containerId?: string }[]): Promise<void> {
    const at = utc(Date.now());
    const time = (ms: number | undefined) => (ms !== undefined ? utc(ms) : null);
    const event = ({ row, next }: (typeof changes)[number]) =>
      next.state === row.state
        ? null
        : JSON.stringify({ serviceId: row.serviceId, slot: row.slot, state: next.state, ...(next.exitCode !== undefined ? { exitCode: next.exitCode } : {}), ...(next.error ? { error: next.error } : {}) });
    const rows = await this.prisma.sql.query<EventRow>(
      `WITH v AS (
         SELECT * FROM unnest($2::uuid[], $3::text[], $4::text[], $5::text[], $6::int[], $7::text[], $8::text[], $9::text[], $10::jsonb[])
           WITH ORDINALITY AS v(id, prev, state, cid, exit, err, started, finished, ev, n)),
       moved AS (
         UPDATE "Task" t SET state = v.state::"TaskState", "containerId" = coalesce(v.cid, t."containerId"),
           "exitCode" = coalesce(v.exit, t."exitCode"), error = coalesce(v.err, t.error),
           "startedAt" = coalesce(v.started::timestamp(3), t."startedAt"), "finishedAt" = coalesce(v.finished::timestamp(3), t."finishedAt"),
           "updatedAt" = $1::timestamp(3)
         FROM v WHERE t.id = v.id AND t.state = v.prev::"TaskState"
         RETURNING t.id, v.ev, v.n)
       INSERT INTO "Event" (at, kind, "subjectId", action, data)
       SELECT $1::timestamp(3), 'task', m.id::text, 'state', m.ev FROM moved m WHERE m.ev IS NOT NULL ORDER BY m.n
       ${EVENT_RETURNING}`,
      [
        at,
        changes.map((c) => c.row.id),
        changes.map((c) => c.row.state),
        changes.map((c) => c.next.state),
        changes.map((c) => c.containerId ?? null),
        changes.map((c) => c.next.exitCode ?? null),
        changes.map((c) => c.next.error ?? null),
        changes.map((c) => time(c.next.startedAt)),
        changes.map((c) => time(c.next.finishedAt)),
        changes.map(event),
      ],
    );
    const evs = eventsFrom(rows);
    await this.events.publish(evs);
    // A task ended: restart it (policy permitting), and pending tasks may fit in its place.
    const ended = new Set(evs.filter((e) => isTerminal(e.data.state as TaskState)).map((e) => e.data.serviceId as string));
    if (ended.size) {
      const ids = new Set([...ended, ...(await this.services.servicesWaitingForCapacity())]);
      for (const id of ids) await this.queues.enqueueReconcile(id, "task ended");
    }
  }
}

/** Runs `fn`, once more if Postgres chose it as a deadlock's victim (node rows touched in bulk). */
async function retryDeadlock<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    if ((e as { code?: string }).code !== "40P01") throw e;
    return fn();
  }
}
