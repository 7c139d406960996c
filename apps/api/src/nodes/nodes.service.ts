// Operator changes to nodes: availability (active, pause, drain), role, labels, removal. Each is one
// transaction with its event; then the services the change can move are reconciled.
import { Inject, Injectable } from "@nestjs/common";
import { CLOCK } from "../common/clock";
import type { Clock } from "@flotilla/core";
import { ConflictError } from "@flotilla/core";
import { PrismaService } from "../database/prisma.service";
import { EventsService } from "../events/events.service";
import type { Prisma } from "../generated/prisma/client";
import { QueuesService } from "../queues/queues.service";
import { queuedAfterCommit } from "../common/unavailable";
import { toListing, type Listing } from "../common/listing";
import { ListingViews } from "../common/listing-views";
import type { NodeView } from "@flotilla/api-types";
import { nodeView, TX_OPTIONS } from "../services/mapping";
import { ServicesRepository } from "../services/services.repository";
import { NodesRepository } from "./nodes.repository";
import { TasksRepository } from "../tasks/tasks.repository";

/** A node change: availability, role and label edits. */
export interface NodeUpdate {
  availability?: "active" | "pause" | "drain";
  /** `ctl node promote/demote`: placement constraints on node.role follow it. */
  role?: "manager" | "worker";
  labelAdd?: Record<string, string>;
  labelRm?: string[];
}

@Injectable()
export class NodesService {
  constructor(
    private readonly prisma: PrismaService,
    private readonly repo: NodesRepository,
    private readonly services: ServicesRepository,
    private readonly events: EventsService,
    private readonly queues: QueuesService,
    private readonly tasks: TasksRepository,
    @Inject(CLOCK) private readonly clock: Clock,
    private readonly listings: ListingViews,
  ) {}

  /** list() as JSON with its ETag: this process's copy while it holds (common/listing-views.ts), else read. */
  listing(): Listing | Promise<Listing> {
    return this.listings.read("nodes", "", async () => toListing(await this.list()));
  }

  async list(): Promise<NodeView[]> {
    return (await this.repo.list()).map(({ node, tasks }) => nodeView(node, tasks));
  }

  async get(ref: string): Promise<NodeView> {
    const node = await this.repo.find(ref);
    return nodeView(node, await this.repo.taskCount(node.id));
  }

  async update(ref: string, u: NodeUpdate): Promise<NodeView> {
    const { node, evs } = await this.prisma.$transaction(async (tx) => {
      const row = await this.repo.find(ref, tx);
      await tx.$queryRaw`SELECT id FROM "Node" WHERE id = ${row.id}::uuid FOR UPDATE`;
      const current = ((await tx.node.findUnique({ where: { id: row.id } }))!.labels ?? {}) as Record<string, string>;
      const labels = { ...current, ...u.labelAdd };
      for (const k of u.labelRm ?? []) delete labels[k];
      const data: Prisma.NodeUpdateInput = { labels };
      if (u.availability) data.availability = u.availability.toUpperCase() as "ACTIVE" | "PAUSE" | "DRAIN";
      if (u.role) data.role = u.role === "manager" ? "MANAGER" : "WORKER";
      // Only managers run the control plane: its replica goes first (ctl node demote does both).
      if (u.role === "worker" && row.machineId && (await tx.controlPlaneReplica.count({ where: { machineId: row.machineId } })))
        throw new ConflictError(
          `node ${row.hostname} runs a control-plane replica: remove it first (ctl node demote does, or DELETE /api/v1/nodes/${row.hostname}/control-plane)`,
          { field: "role" },
        );
      const node = await tx.node.update({ where: { id: row.id }, data });
      const evs = await this.events.record(tx, [
        {
          kind: "node",
          subjectId: node.id,
          action: "update",
          data: { hostname: node.hostname, availability: node.availability.toLowerCase(), role: node.role.toLowerCase(), labels },
        },
      ]);
      return { node, evs };
    }, TX_OPTIONS);
    await this.events.publish(evs);
    await queuedAfterCommit(this.reconcileAround([node.id]));
    return this.get(node.id);
  }

  /**
   * Removes a node. Refused while it is up unless forced: its tasks would be replaced while
   * they still run. Its unfinished tasks are recorded ORPHANED (no agent will report them) and
   * their services reconciled onto the other nodes.
   */
  async remove(ref: string, force: boolean): Promise<void> {
    const { evs, services } = await this.prisma.$transaction(async (tx) => {
      const node = await this.repo.find(ref, tx);
      if (node.status !== "DOWN" && !force) {
        throw new ConflictError(
          `node ${node.hostname} is ${node.status.toLowerCase()}: drain it and stop its agent first, or remove it with --force`,
          { status: node.status.toLowerCase() },
        );
      }
      const tasks = await this.tasks.orphanAll(tx, node.id, `node ${node.hostname} was removed`, this.clock.now());
      await tx.node.delete({ where: { id: node.id } });
      const evs = await this.events.record(tx, [
        { kind: "node", subjectId: node.id, action: "remove", data: { hostname: node.hostname, force, orphaned: tasks.length } },
        ...tasks.map((t) => ({
          kind: "task",
          subjectId: t.id,
          action: "state",
          data: { serviceId: t.serviceId, state: "ORPHANED", reason: "node-gone" },
        })),
      ]);
      return { evs, services: [...new Set(tasks.map((t) => t.serviceId))] };
    }, TX_OPTIONS);
    await this.events.publish(evs);
    const waiting = await this.services.servicesWaitingForCapacity();
    await queuedAfterCommit(
      Promise.all([...new Set([...services, ...waiting])].map((s) => this.queues.enqueueReconcile(s, "node removed"))),
    );
  }

  /** Reconciles services with tasks on these nodes and those waiting for capacity. */
  async reconcileAround(nodeIds: string[]): Promise<void> {
    const ids = new Set([...(await this.services.servicesOnNodes(nodeIds)), ...(await this.services.servicesWaitingForCapacity())]);
    for (const id of ids) await this.queues.enqueueReconcile(id, "node changed");
  }
}
