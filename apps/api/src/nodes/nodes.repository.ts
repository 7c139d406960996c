import { Injectable } from "@nestjs/common";
import { NotFoundError } from "@flotilla/core";
import { PrismaService } from "../database/prisma.service";
import type { Node as NodeRow, Prisma } from "../generated/prisma/client";
import { ACTIVE_STATES } from "../services/mapping";
import { NODE_COLUMNS, nodeRow } from "../database/node-rows";
import { desiredStateSql } from "../database/sql";
import { agentTokenMachines, agentTokenName } from "../auth/roles";

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

  /**
   * The node whose agent token is named `tokenName` (agentTokenName), if one has registered.
   * An indexed read: every agent's long polls ask it, and reading every node's name for each
   * (as this did) was a scan of 5,000 rows per poll. A long hostname's token name is its start
   * and a digest, so the names with that start are the candidates then (agentTokenMachines).
   */
  async ofAgentToken(tokenName: string): Promise<{ id: string; hostname: string } | undefined> {
    const machines = agentTokenMachines(tokenName);
    if (!machines) return undefined;
    const candidates = await this.prisma.sql.query<{ id: string; hostname: string }>(
      `SELECT id::text AS id, hostname FROM "Node"
       WHERE hostname = $1 OR ($2::text IS NOT NULL AND left(hostname, length($2)) = $2) ORDER BY hostname`,
      [machines.name, machines.cutTo ?? null],
    );
    return candidates.find((n) => agentTokenName(n.hostname) === tokenName);
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
