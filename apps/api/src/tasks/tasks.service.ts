import { Injectable } from "@nestjs/common";
import { NotFoundError } from "@flotilla/core";
import { PrismaService } from "../database/prisma.service";
import { TASK_COLUMNS, type TaskRow } from "../database/task-rows";
import { desiredStateSql } from "../database/sql";
import { NodesRepository } from "../nodes/nodes.repository";
import type { TaskView } from "@flotilla/api-types";
import { taskView } from "../services/mapping";
import { ServicesRepository } from "../services/services.repository";
import { toListing, type Listing } from "../common/listing";
import { ListingViews } from "../common/listing-views";

/** Filters of a task listing. */
export interface TaskFilter {
  service?: string;
  node?: string;
  desiredState?: "running" | "shutdown";
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

@Injectable()
export class TasksService {
  constructor(
    private readonly prisma: PrismaService,
    private readonly services: ServicesRepository,
    private readonly nodes: NodesRepository,
    private readonly listings: ListingViews,
  ) {}

  /** list(f) as JSON with its ETag: this process's copy for this filter while it holds (common/listing-views.ts), else read. */
  listing(f: TaskFilter): Listing | Promise<Listing> {
    return this.listings.read("tasks", JSON.stringify([f.service, f.node, f.desiredState]), async () => toListing(await this.list(f)));
  }

  async list(f: TaskFilter): Promise<TaskView[]> {
    // Plain SQL (see database/sql.ts): the listing ctl and the console poll.
    const where: string[] = [];
    const values: unknown[] = [];
    if (f.service) where.push(`t."serviceId" = $${values.push((await this.services.find(f.service)).id)}::uuid`);
    if (f.node) where.push(`t."nodeId" = $${values.push((await this.nodes.find(f.node)).id)}::uuid`);
    if (f.desiredState) where.push(`t."desiredState" = ${desiredStateSql(f.desiredState)}`);
    const rows = await this.prisma.sql.query<TaskRow & { serviceName: string; nodeHostname: string | null }>(
      `SELECT ${TASK_COLUMNS}, s.name AS "serviceName", n.hostname AS "nodeHostname"
       FROM "Task" t JOIN "Service" s ON s.id = t."serviceId" LEFT JOIN "Node" n ON n.id = t."nodeId"
       ${where.length ? `WHERE ${where.join(" AND ")}` : ""}
       ORDER BY t."serviceId", t.slot, t."createdAt" DESC LIMIT 50000`,
      values,
    );
    return rows.map(({ serviceName, nodeHostname, ...t }) => taskView(t, serviceName, nodeHostname));
  }

  async get(id: string): Promise<TaskView> {
    const t = UUID.test(id)
      ? await this.prisma.task.findUnique({
          where: { id },
          include: { service: { select: { name: true } }, node: { select: { hostname: true } } },
        })
      : null;
    if (!t) throw new NotFoundError("task", id);
    return taskView(t, t.service.name, t.node?.hostname ?? null);
  }
}
