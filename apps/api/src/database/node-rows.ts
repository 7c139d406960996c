// Node rows read with plain SQL (see sql.ts), in exactly the shape Prisma returns them, so
// mapping.ts serves both. Keep in step with the Node model in prisma/schema.prisma.
import type { Node as NodeRow } from "../generated/prisma/client";

/** Every Node column; `n` is the alias the statement gives "Node". Bigints come back as text. */
export const NODE_COLUMNS = `n.id::text AS id, n."machineId"::text AS "machineId", n.hostname, n.role::text AS role, n.status::text AS status,
  n.availability::text AS availability, n.labels, n.address, n."engineUrl", n."engineTlsRef", n."cpuNanos"::text AS "cpuNanos",
  n."memoryBytes"::text AS "memoryBytes", n."lastHeartbeatAt", n."createdAt", n."updatedAt"`;

/** A row selected with NODE_COLUMNS, with its bigints restored. */
export function nodeRow(r: Omit<NodeRow, "cpuNanos" | "memoryBytes"> & { cpuNanos: string; memoryBytes: string }): NodeRow {
  return { ...r, cpuNanos: BigInt(r.cpuNanos), memoryBytes: BigInt(r.memoryBytes) };
}
