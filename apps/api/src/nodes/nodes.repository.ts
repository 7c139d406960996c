import { Injectable } from "@nestjs/common";
import { NotFoundError } from "@flotilla/core";
import { PrismaService } from "../database/prisma.service";
import type { Node as NodeRow, Prisma } from "../generated/prisma/client";
import { ACTIVE_STATES } from "../services/mapping";

type Tx = Prisma.TransactionClient;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Database access for nodes. */
@Injectable()
export class NodesRepository {
  constructor(private readonly prisma: PrismaService) {}

  /** A node by id or hostname; NotFoundError otherwise. */
  async find(ref: string, tx: Tx = this.prisma): Promise<NodeRow> {
    const row =
      (UUID.test(ref) ? await tx.node.findUnique({ where: { id: ref } }) : null) ??
      (await tx.node.findUnique({ where: { hostname: ref } }));
    if (!row) throw new NotFoundError("node", ref);
    return row;
  }

  async list(): Promise<{ node: NodeRow; tasks: number }[]> {
    const [nodes, counts] = await Promise.all([
      this.prisma.node.findMany({ orderBy: { hostname: "asc" } }),
      this.prisma.task.groupBy({
        by: ["nodeId"],
        where: { nodeId: { not: null }, desiredState: "RUNNING", state: { in: [...ACTIVE_STATES] } },
        _count: { _all: true },
      }),
    ]);
    const byNode = new Map(counts.map((c) => [c.nodeId, c._count._all]));
    return nodes.map((node) => ({ node, tasks: byNode.get(node.id) ?? 0 }));
  }

  /** Live-task count of one node. */
  async taskCount(nodeId: string): Promise<number> {
    return this.prisma.task.count({ where: { nodeId, desiredState: "RUNNING", state: { in: [...ACTIVE_STATES] } } });
  }
}
