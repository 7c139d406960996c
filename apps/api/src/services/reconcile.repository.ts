// Reads what one reconcile needs and writes its plan in one transaction, re-checking that the
// service is still at the versions it was read at (Nomad's plan re-check). Any reconcile write
// bumps `planVersion`, so of two reconciles planned from the same view only one commits.
import { Injectable } from "@nestjs/common";
import {
  liveCountsOfNumbered,
  liveCountsWithout,
  tasksToPrune,
  type LiveCounts,
  type NodeInfo,
  type Task,
  type ReconcileResult,
  type RollbackDecision,
  type ScheduleResult,
  type ServiceSpec,
  type UpdateState,
} from "@flotilla/core";
import { PrismaService } from "../database/prisma.service";
import { type SqlRunner, desiredStateSql, utc } from "../database/sql";
import { NODE_COLUMNS, nodeRow } from "../database/node-rows";
import { TASK_COLUMNS } from "../database/task-rows";
import { insertEvents } from "../events/event-rows";
import { nodesWithDispatchWork } from "../tasks/dispatch-work";
import type { FlotillaEvent } from "../events/events.service";
import type { NodeDispatch } from "../queues/queues.service";
import { TasksRepository } from "../tasks/tasks.repository";
import type { Service as ServiceRow, Task as TaskRow } from "../generated/prisma/client";
import { SharedReads } from "../common/shared-reads";
import { ACTIVE_STATES, specOf, toCoreNode } from "./mapping";

/** Everything one reconcile reads. */
export interface ReconcileView {
  service: ServiceRow;
  tasks: TaskRow[];
  /** Every node, as core sees it (shared with the reconciles of the same moment: read only). */
  nodes: readonly NodeInfo[];
  /**
   * Live tasks of other services, counted per node and service: they hold reservations and
   * ports. Counted, not listed — with tens of thousands of tasks on the cluster, reading them
   * all was the largest part of every reconcile. Read only for a decision that places tasks
   * (`withCounts`): at 150,000 tasks one count took up to 1.7 s of a Postgres backend, and the
   * sweep's reconciles of converged services needed none.
   */
  others?: LiveCounts;
  specs: Map<string, ServiceSpec>;
}

/** The live tasks per node and service, and the specs of the services counted. */
interface ClusterCounts {
  counts: LiveCounts;
  specs: ReadonlyMap<string, ServiceSpec>;
}

/** Thrown when the service changed since it was read; the caller plans again. */
export class StalePlanError extends Error {}

@Injectable()
export class ReconcileRepository {
  /**
   * Reconciles running at once (a burst: services created together, a node's services after it
   * went down, the sweep) share one read of the nodes and of the cluster's live counts; each read
   * still starts after the reconcile asked for it (SharedReads), so none plans from older rows
   * than it would have read alone. At 5,000 nodes and 30 services of 5,000 replicas, reading and
   * parsing these once per reconcile was most of a reconcile's time.
   */
  private readonly nodes = new SharedReads<readonly NodeInfo[]>();
  private readonly counts = new SharedReads<ClusterCounts>();

  constructor(
    private readonly prisma: PrismaService,
    private readonly tasks: TasksRepository,
  ) {}

  async load(serviceId: string): Promise<ReconcileView | null> {
    // The service first: if another reconcile commits after this read, its tasks may be read
    // below but the planVersion read here is older, so our write is refused. Never the reverse.
    const service = await this.prisma.service.findUnique({ where: { id: serviceId } });
    if (!service) return null;
    const [tasks, nodes] = await Promise.all([
      this.prisma.sql.query<TaskRow>(`SELECT ${TASK_COLUMNS} FROM "Task" t WHERE t."serviceId" = $1::uuid`, [serviceId]),
      this.nodes.read("nodes", async () =>
        (await this.prisma.sql.query<Parameters<typeof nodeRow>[0]>(`SELECT ${NODE_COLUMNS} FROM "Node" n`)).map((r) =>
          toCoreNode(nodeRow(r)),
        ),
      ),
    ]);
    return { service, tasks, nodes, specs: new Map([[service.id, specOf(service)]]) };
  }

  /** The view with the other services' live counts and specs, for a decision that places tasks. */
  async withCounts(view: ReconcileView): Promise<ReconcileView> {
    const cluster = await this.counts.read("counts", () => this.readCounts());
    // The aggregate counts this service's tasks too: they are listed (tasks) instead.
    const specs = new Map(cluster.specs);
    specs.set(view.service.id, specOf(view.service));
    return { ...view, others: liveCountsWithout(cluster.counts, view.service.id), specs };
  }

  private async readCounts(): Promise<ClusterCounts> {
    // One row: the services numbered, and for each node the numbers of its live tasks' services
    // ("3,17,3"), counted here. Grouping by node alone keeps Postgres's hash table at one entry
    // per node; grouping by node and service (one entry per task at 30 tasks a node) spilled
    // to disk and, with 36-character ids in the answer, took up to 1.8 s at 150,000 tasks.
    const [row] = await this.prisma.sql.query<{ services: string[]; nodes: Record<string, string> }>(
      `WITH s AS (SELECT id, (row_number() OVER ())::int - 1 AS i FROM "Service")
       SELECT (SELECT coalesce(json_agg(s.id ORDER BY s.i), '[]') FROM s) AS services,
         (SELECT coalesce(json_object_agg(c."nodeId", c.services), '{}') FROM (
            SELECT t."nodeId", string_agg(s.i::text, ',') AS services FROM "Task" t JOIN s ON s.id = t."serviceId"
            WHERE t."nodeId" IS NOT NULL AND t."desiredState" = ${desiredStateSql("running")} AND t.state = ANY($1::"TaskState"[])
            GROUP BY t."nodeId") c) AS nodes`,
      [[...ACTIVE_STATES]],
    );
    const counts = liveCountsOfNumbered(row!.services, row!.nodes);
    const ids = [...new Set([...counts.values()].flatMap((perService) => [...perService.keys()]))];
    const specRows = ids.length ? await this.prisma.service.findMany({ where: { id: { in: ids } }, select: { id: true, spec: true } }) : [];
    return { counts, specs: new Map(specRows.map((r) => [r.id, specOf(r)])) };
  }

  /** Deletes the finished tasks libs/core tasksToPrune names (`tasks`: the view's, as core's). Returns how many went. */
  async prune(view: ReconcileView, tasks: readonly Task[], keepFailed: readonly string[]): Promise<number> {
    return this.tasks.prune(tasksToPrune(tasks, specOf(view.service).restartPolicy, keepFailed));
  }

  /**
   * Writes the plan in one transaction: the service's guard (see the header) with its update
   * state or rollback, then the task decisions (TasksRepository, their only writer), then the
   * events. Throws StalePlanError if the service moved on since `view` was read.
   */
  async write(
    view: ReconcileView,
    r: ReconcileResult,
    s: ScheduleResult,
    now: number,
    rollback: RollbackDecision | undefined,
  ): Promise<FlotillaEvent[]> {
    const { service } = view;
    return this.prisma.sql.transaction(async (tx) => {
      await this.guard(tx, service, rollback ? rollback.update : r.update, now, rollback);
      const events = await this.tasks.writePlan(tx, service.id, view.tasks, r, s, now);
      if (rollback)
        events.push({
          kind: "service",
          subjectId: service.id,
          action: "rollback",
          data: { name: service.name, reason: rollback.update.message, automatic: true },
        });
      return insertEvents(tx, events, now);
    });
  }

  /** Bumps planVersion (and installs a rollback) only if the service is still as it was read. */
  private async guard(
    tx: SqlRunner,
    service: ServiceRow,
    update: UpdateState | undefined,
    now: number,
    rollback: RollbackDecision | undefined,
  ): Promise<void> {
    const rows = await tx.query(
      `UPDATE "Service" SET "planVersion" = "planVersion" + 1, "updateState" = $5::jsonb, "updatedAt" = $6::timestamp(3)
         ${rollback ? `, spec = $7::jsonb, "previousSpec" = $8::jsonb, version = version + 1, "taskVersion" = "taskVersion" + 1` : ""}
       WHERE id = $1::uuid AND version = $2 AND "taskVersion" = $3 AND "planVersion" = $4
       RETURNING id`,
      [
        service.id,
        service.version,
        service.taskVersion,
        service.planVersion,
        update ? JSON.stringify(update) : null,
        utc(now),
        ...(rollback ? [JSON.stringify(rollback.spec), JSON.stringify(specOf(service))] : []),
      ],
    );
    if (rows.length === 0) throw new StalePlanError(`service ${service.name} changed while it was being reconciled`);
  }

  /** Nodes with dispatch work for this service (ready ones: see nodesWithDispatchWork). */
  async nodesToDispatch(serviceId: string, now: number): Promise<NodeDispatch[]> {
    return nodesWithDispatchWork(this.prisma.sql, now, serviceId);
  }
}
