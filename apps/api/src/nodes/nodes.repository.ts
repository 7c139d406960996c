import { Injectable } from "@nestjs/common";
import { NotFoundError } from "@flotilla/core";
import { PrismaService } from "../database/prisma.service";
import type { Node as NodeRow, Prisma } from "../generated/prisma/client";
import { ACTIVE_STATES } from "../services/mapping";
import { NODE_COLUMNS, nodeRow } from "../database/node-rows";
import { desiredStateSql } from "../database/sql";

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

  /** Every node's id and hostname (to find an agent token's node). */
  async hostnames(): Promise<{ id: string; hostname: string }[]> {
    return this.prisma.sql.query<{ id: string; hostname: string }>(`SELECT id::text AS id, hostname FROM "Node"`);
  }

  /** Every node, by hostname, with its live-task count. Plain SQL: the listing ctl and the console poll. */
  async list(): Promise<{ node: NodeRow; tasks: number }[]> {
    const rows = await this.prisma.sql.query<Parameters<typeof nodeRow>[0] & { tasks: number }>(
      `SELECT ${NODE_COLUMNS}, coalesce(c.tasks, 0)::int AS tasks
       FROM "Node" n LEFT JOIN (
         SELECT "nodeId", count(*) AS tasks FROM "Task"
         WHERE "nodeId" IS NOT NULL AND "desiredState" = ${desiredStateSql("running")} AND state = ANY($1::"TaskState"[])
         GROUP BY 1) c ON c."nodeId" = n.id
       ORDER BY n.hostname`,
      [[...ACTIVE_STATES]],
    );
    return rows.map(({ tasks, ...node }) => ({ node: nodeRow(node), tasks }));
  }

  /** Live-task count of one node. */
  async taskCount(nodeId: string): Promise<number> {
    return this.prisma.task.count({ where: { nodeId, desiredState: "RUNNING", state: { in: [...ACTIVE_STATES] } } });
  }
}
