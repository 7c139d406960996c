// Agent heartbeats: the first registers the node, each marks it ready and reports its
// containers, which are folded into task states (forward only, libs/core foldContainerState).
// Containers no task wants — a node back after its tasks were replaced — are removed.
import { Inject, Injectable, Logger } from "@nestjs/common";
import { foldContainerState, isTerminal, type ContainerObservation, type Task } from "@flotilla/core";
import { TASK_LABELS } from "@flotilla/engine-client";
import { z } from "zod";
import { PrismaService } from "../database/prisma.service";
import { DispatchService } from "../dispatch/dispatch.service";
import { EventsService, type EventInput } from "../events/events.service";
import type { Node as NodeRow, Task as TaskRow } from "../generated/prisma/client";
import { QueuesService } from "../queues/queues.service";
import { ACTIVE_STATES, toCoreTask, TX_OPTIONS } from "../services/mapping";
import { ServicesRepository } from "../services/services.repository";
import { IngressService, type IngressTable } from "../ingress/ingress.service";
import { HEARTBEAT_CONFIG, type HeartbeatConfig } from "./heartbeat-config";

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
const FULL_FOLD_BEATS = 6;

function observation(c: Reported): ContainerObservation {
  if (c.state === "running") return { kind: "running" };
  if (c.state === "created") return { kind: "created" };
  if (c.oomKilled) return { kind: "oom", ...(c.exitCode !== undefined ? { exitCode: c.exitCode } : {}) };
  return { kind: "exited", exitCode: c.exitCode ?? 0 };
}

@Injectable()
export class HeartbeatsService {
  private readonly logger = new Logger("heartbeats");
  private readonly lastReport = new Map<string, { digest: string; at: number }>();

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
    const node = await this.touch(hb);
    await this.fold(node, hb.containers);
    const ingress = await this.ingress.tableFor(hb.ingressVersion);
    return { nodeId: node.id, heartbeatMs: this.config.periodMs, ...(ingress ? { ingress } : {}) };
  }

  /** Marks the node alive; registers it on first contact. One UPDATE when nothing changed. */
  private async touch(hb: HeartbeatBody): Promise<NodeRef> {
    const now = new Date();
    const live = { engineUrl: hb.engineUrl, cpuNanos: BigInt(hb.resources.nanoCpus), memoryBytes: BigInt(hb.resources.memoryBytes), lastHeartbeatAt: now };
    // The steady state — a ready node beating again — is one statement.
    const fast = await this.prisma.$queryRaw<NodeRef[]>`
      UPDATE "Node" SET "engineUrl" = ${hb.engineUrl}, "cpuNanos" = ${live.cpuNanos}, "memoryBytes" = ${live.memoryBytes},
             "lastHeartbeatAt" = ${now}, "updatedAt" = ${now}
      WHERE hostname = ${hb.hostname} AND status = 'READY'::"NodeStatus"
      RETURNING id::text AS id, hostname, "engineUrl"`;
    if (fast.length === 1 && (!hb.nodeId || fast[0].id === hb.nodeId)) return fast[0];

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
    // Back or new: whatever it reports must be looked at in full (strays of replaced tasks).
    this.lastReport.delete(node.id);
    // New capacity: pending tasks may fit now, global services want a task here.
    for (const id of await this.services.servicesWaitingForCapacity()) await this.queues.enqueueReconcile(id, `node ${node.hostname} ready`);
    return node;
  }

  /** Folds reported container states into this node's tasks and removes strays. */
  private async fold(node: NodeRef, containers: Reported[]): Promise<void> {
    const now = Date.now();
    // An identical report changes nothing we do not already know, except a container that
    // vanished behind our back, which a full pass every FULL_FOLD_BEATS beats still catches.
    const digest = containers.map((c) => `${c.id}:${c.state}:${c.exitCode ?? ""}`).sort().join(",");
    const last = this.lastReport.get(node.id);
    if (last?.digest === digest && now - last.at < FULL_FOLD_BEATS * this.config.periodMs) return;
    this.lastReport.set(node.id, { digest, at: now });
    const reported = new Map<string, Reported>();
    for (const c of containers) {
      const taskId = c.labels[TASK_LABELS.taskId];
      if (taskId) reported.set(taskId, c);
    }
    const active = await this.prisma.task.findMany({ where: { nodeId: node.id, state: { in: [...ACTIVE_STATES] } } });
    const activeById = new Map(active.map((t) => [t.id, t]));
    const changes: { row: TaskRow; next: Task; containerId?: string }[] = [];

    for (const t of active) {
      const c = reported.get(t.id);
      const before = toCoreTask(t);
      if (c) {
        const next = foldContainerState(before, observation(c), now);
        if (next !== before || t.containerId !== c.id) changes.push({ row: t, next, containerId: c.id });
      } else if (t.containerId && (t.state === "RUNNING" || t.state === "STARTING") && t.updatedAt.getTime() < now - 2 * this.config.periodMs) {
        // Its container vanished: the agent lost it (or it was removed behind our back).
        const next = foldContainerState(before, { kind: "removed" }, now);
        if (next !== before) changes.push({ row: t, next });
      }
    }
    if (changes.length) await this.write(changes);

    // Strays: containers whose task is gone or finished (e.g. orphaned while the node was away).
    const strays = containers.filter((c) => {
      const taskId = c.labels[TASK_LABELS.taskId];
      return taskId !== undefined && !activeById.has(taskId);
    });
    if (strays.length) void this.dispatch.stopContainers(strays.map((c) => ({ node, containerId: c.id })), 10_000);
  }

  private async write(changes: { row: TaskRow; next: Task; containerId?: string }[]): Promise<void> {
    const ended = new Set<string>();
    const evs = await this.prisma.$transaction(async (tx) => {
      const events: EventInput[] = [];
      for (const { row, next, containerId } of changes) {
        const n = await tx.task.updateMany({
          // Forward only even against a concurrent writer (dispatch): the state must be the one read.
          where: { id: row.id, state: row.state },
          data: {
            state: next.state,
            ...(containerId ? { containerId } : {}),
            ...(next.exitCode !== undefined ? { exitCode: next.exitCode } : {}),
            ...(next.error !== undefined ? { error: next.error } : {}),
            ...(next.startedAt !== undefined ? { startedAt: new Date(next.startedAt) } : {}),
            ...(next.finishedAt !== undefined ? { finishedAt: new Date(next.finishedAt) } : {}),
          },
        });
        if (n.count === 0 || next.state === row.state) continue;
        if (isTerminal(next.state)) ended.add(row.serviceId);
        events.push({ kind: "task", subjectId: row.id, action: "state", data: { serviceId: row.serviceId, slot: row.slot, state: next.state, ...(next.exitCode !== undefined ? { exitCode: next.exitCode } : {}), ...(next.error ? { error: next.error } : {}) } });
      }
      return events.length ? this.events.record(tx, events) : [];
    }, TX_OPTIONS);
    await this.events.publish(evs);
    // A task ended: restart it (policy permitting), and pending tasks may fit in its place.
    if (ended.size) {
      const ids = new Set([...ended, ...(await this.services.servicesWaitingForCapacity())]);
      for (const id of ids) await this.queues.enqueueReconcile(id, "task ended");
    }
  }
}
