// Database access for services and their tasks: lookups by id or name, counts for listings, the
// row lock a spec change takes. Services call these; nothing here decides anything.
import { Injectable } from "@nestjs/common";
import { ACTIVE_TASK_STATES, checkPublishedPorts, NotFoundError, type PortConfig, type ServiceSpec } from "@flotilla/core";
import { PrismaService } from "../database/prisma.service";
import type { Prisma, Service as ServiceRow } from "../generated/prisma/client";

type Tx = Prisma.TransactionClient;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Task counts of one service, for `ctl service ls`. */
export interface TaskCounts {
  /** Tasks observed RUNNING that should be. */
  running: number;
  /** Tasks the orchestrator wants running (not finished). */
  live: number;
}

@Injectable()
export class ServicesRepository {
  constructor(private readonly prisma: PrismaService) {}

  /** A service by id or by name; NotFoundError otherwise. */
  async find(ref: string, tx: Tx = this.prisma): Promise<ServiceRow> {
    const row = UUID.test(ref)
      ? ((await tx.service.findUnique({ where: { id: ref } })) ?? (await tx.service.findUnique({ where: { name: ref } })))
      : await tx.service.findUnique({ where: { name: ref } });
    if (!row) throw new NotFoundError("service", ref);
    return row;
  }

  /**
   * The same, with the row locked until the transaction ends: spec changes serialize on it, so
   * two PATCHes never both compute version+1 from the same version.
   */
  async findForUpdate(tx: Tx, ref: string): Promise<ServiceRow> {
    const row = await this.find(ref, tx);
    await tx.$queryRaw`SELECT id FROM "Service" WHERE id = ${row.id}::uuid FOR UPDATE`;
    return (await tx.service.findUnique({ where: { id: row.id } }))!;
  }

  /**
   * Refuses (ConflictError) ports another service already publishes (libs/core
   * checkPublishedPorts). Specs with ports serialize on one advisory lock until the transaction
   * ends, so two services racing for a port cannot both pass the check.
   */
  async assertPortsFree(tx: Tx, spec: Pick<ServiceSpec, "name" | "ports">): Promise<void> {
    if (spec.ports.length === 0) return;
    await tx.$executeRaw`SELECT pg_advisory_xact_lock(hashtext('flotilla:published-ports'))`;
    const others = await tx.$queryRaw<{ name: string; ports: PortConfig[] }[]>`
      SELECT name, spec->'ports' AS ports FROM "Service" WHERE name <> ${spec.name} AND jsonb_array_length(spec->'ports') > 0`;
    checkPublishedPorts(spec, others);
  }

  /** Every service, by name. Plain SQL: the listing ctl and the console poll. */
  async list(): Promise<ServiceRow[]> {
    return this.prisma.sql.query<ServiceRow>(
      `SELECT s.id::text AS id, s.name, s.mode::text AS mode, s.spec, s."previousSpec", s.version, s."taskVersion",
         s."updateState", s."planVersion", s."createdAt", s."updatedAt"
       FROM "Service" s ORDER BY s.name`,
    );
  }

  /**
   * Running and live task counts per service id: a row each, kept by triggers on Task
   * (ServiceTaskCounts), not a count of the tasks. Listings are what ctl and the console poll
   * while a large change runs.
   */
  async counts(serviceIds: string[]): Promise<Map<string, TaskCounts>> {
    const out = new Map<string, TaskCounts>(serviceIds.map((id) => [id, { running: 0, live: 0 }]));
    if (serviceIds.length === 0) return out;
    const rows = await this.prisma.sql.query<{ serviceId: string; live: number; running: number }>(
      `SELECT "serviceId"::text AS "serviceId", live, running FROM "ServiceTaskCounts" WHERE "serviceId" = ANY($1::uuid[])`,
      [serviceIds],
    );
    for (const r of rows) out.set(r.serviceId, { live: r.live, running: r.running });
    return out;
  }

  /** Ids of services a new or returning node could help: pending tasks, or global mode. */
  async servicesWaitingForCapacity(): Promise<string[]> {
    const [pending, global] = await Promise.all([
      this.prisma.task.findMany({
        where: { state: "PENDING", desiredState: "RUNNING" },
        select: { serviceId: true },
        distinct: ["serviceId"],
      }),
      this.prisma.service.findMany({ where: { mode: "GLOBAL" }, select: { id: true } }),
    ]);
    return [...new Set([...pending.map((t) => t.serviceId), ...global.map((s) => s.id)])];
  }

  /** Ids of services with unfinished tasks on these nodes (they must move when the nodes go). */
  async servicesOnNodes(nodeIds: string[]): Promise<string[]> {
    const rows = await this.prisma.task.findMany({
      where: { nodeId: { in: nodeIds }, state: { in: [...ACTIVE_TASK_STATES] } },
      select: { serviceId: true },
      distinct: ["serviceId"],
    });
    return rows.map((r) => r.serviceId);
  }
}
