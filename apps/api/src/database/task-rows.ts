// Task rows read with plain SQL (see sql.ts), in exactly the shape Prisma returns them, so
// mapping.ts serves both. Keep in step with the Task model in prisma/schema.prisma.
import type { Task as TaskRow } from "../generated/prisma/client";

/** Every Task column, as Prisma types it; `t` is the alias the statement gives "Task". */
export const TASK_COLUMNS = `t.id::text AS id, t."serviceId"::text AS "serviceId", t.slot, t."nodeId"::text AS "nodeId",
  t."specVersion", t.state::text AS state, t."desiredState"::text AS "desiredState", t.message, t.error,
  t."containerId", t.endpoints, t."missingReports", t."exitCode", t."startedAt", t."finishedAt", t."createdAt", t."updatedAt"`;

export type { TaskRow };

/**
 * A LATERAL subquery for the tasks of the node aliased `n` whose state is in the array parameter
 * `states` ("$6"), read only where `when` (an SQL condition on `n`) holds; join it as
 * `LEFT JOIN LATERAL (…) t ON true`. Why not a plain join: before Postgres has statistics of
 * "Task" (autovacuum analyzes a table at most once a minute, and a cluster's tasks can go from
 * none to 150,000 within one), the planner guessed hundreds of tasks per node and hash-joined
 * every task: each heartbeat batch scanned the whole table (70,000 rows for 18 nodes), a third of
 * Postgres's time in a 5,000-node run. OFFSET 0 keeps the subquery from being merged into the
 * join, so the only plan left is a lookup per node through the "nodeId" index.
 */
export function nodeTasksLateral(states: string, when = "true"): string {
  return `SELECT * FROM "Task" t WHERE (${when}) AND t."nodeId" = n.id AND t.state = ANY(${states}::"TaskState"[]) OFFSET 0`;
}
