import { Injectable } from "@nestjs/common";
import { NotFoundError } from "@flotilla/core";
import { PrismaService } from "../database/prisma.service";
import type { Prisma } from "../generated/prisma/client";
import { NodesRepository } from "../nodes/nodes.repository";
import type { TaskView } from "@flotilla/api-types";
import { taskView } from "../services/mapping";
import { ServicesRepository } from "../services/services.repository";

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
  ) {}

  async list(f: TaskFilter): Promise<TaskView[]> {
    const where: Prisma.TaskWhereInput = {};
    if (f.service) where.serviceId = (await this.services.find(f.service)).id;
    if (f.node) where.nodeId = (await this.nodes.find(f.node)).id;
    if (f.desiredState) where.desiredState = f.desiredState === "running" ? "RUNNING" : "SHUTDOWN";
    const rows = await this.prisma.task.findMany({
      where,
      include: { service: { select: { name: true } }, node: { select: { hostname: true } } },
      orderBy: [{ serviceId: "asc" }, { slot: "asc" }, { createdAt: "desc" }],
      take: 50_000,
    });
    return rows.map((t) => taskView(t, t.service.name, t.node?.hostname ?? null));
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
