// Task rows read with plain SQL (see sql.ts), in exactly the shape Prisma returns them, so
// mapping.ts serves both. Keep in step with the Task model in prisma/schema.prisma.
import type { Task as TaskRow } from "../generated/prisma/client";

/** Every Task column, as Prisma types it; `t` is the alias the statement gives "Task". */
export const TASK_COLUMNS = `t.id::text AS id, t."serviceId"::text AS "serviceId", t.slot, t."nodeId"::text AS "nodeId",
  t."specVersion", t.state::text AS state, t."desiredState"::text AS "desiredState", t.message, t.error,
  t."containerId", t.endpoints, t."missingReports", t."exitCode", t."startedAt", t."finishedAt", t."createdAt", t."updatedAt"`;

export type { TaskRow };
