// Reads what one reconcile needs and writes its plan in one transaction, re-checking that the
// service is still at the versions it was read at (Nomad's plan re-check). Any reconcile write
// bumps `planVersion`, so of two reconciles planned from the same view only one commits.
import { Injectable } from "@nestjs/common";
import {
  isTerminal,
  type LiveCounts,
  type ReconcileResult,
  type ScheduleResult,
  type ServiceSpec,
  type TaskState,
  type UpdateState,
} from "@flotilla/core";
import { PrismaService } from "../database/prisma.service";
import { utc } from "../database/sql";
import { NODE_COLUMNS, nodeRow } from "../database/node-rows";
import { TASK_COLUMNS } from "../database/task-rows";
import { insertEvents } from "../events/event-rows";
import type { EventInput, FlotillaEvent } from "../events/events.service";
import type { Node as NodeRow, Service as ServiceRow, Task as TaskRow } from "../generated/prisma/client";
import { ACTIVE_STATES, specOf } from "./mapping";

/** Everything one reconcile reads. */
export interface ReconcileView {
  service: ServiceRow;
  tasks: TaskRow[];
  nodes: NodeRow[];
  /**
   * Live tasks of other services, counted per node and service: they hold reservations and
   * ports. Counted, not listed — with tens of thousands of tasks on the cluster, reading them
   * all was the largest part of every reconcile.
   */
  others: LiveCounts;
  specs: Map<string, ServiceSpec>;
}

/** A rollback the update's failure action asked for, installed with the plan. */
export interface RollbackWrite {
  spec: ServiceSpec;
  update: UpdateState;
}

/** Finished tasks kept per slot (or node, in global mode) besides what the restart policy needs. */
export const TASK_HISTORY = 5;

/** Thrown when the service changed since it was read; the caller plans again. */
export class StalePlanError extends Error {}

@Injectable()
export class ReconcileRepository {
  constructor(private readonly prisma: PrismaService) {}

  async load(serviceId: string): Promise<ReconcileView | null> {
    // The service first: if another reconcile commits after this read, its tasks may be read
    // below but the planVersion read here is older, so our write is refused. Never the reverse.
    const service = await this.prisma.service.findUnique({ where: { id: serviceId } });
    if (!service) return null;
    const [tasks, nodeRows, counted] = await Promise.all([
      this.prisma.sql.query<TaskRow>(`SELECT ${TASK_COLUMNS} FROM "Task" t WHERE t."serviceId" = $1::uuid`, [serviceId]),
      this.prisma.sql.query<Parameters<typeof nodeRow>[0]>(`SELECT ${NODE_COLUMNS} FROM "Node" n`),
      // One row per node however many tasks it runs, its counts as JSON (parsed natively, where
      // a Postgres array of uuids is parsed character by character).
      this.prisma.sql.query<{ nodeId: string; counts: Record<string, number> }>(
        `SELECT "nodeId", json_object_agg("serviceId", n) AS counts FROM (
           SELECT "nodeId"::text AS "nodeId", "serviceId"::text AS "serviceId", count(*)::int AS n FROM "Task"
           WHERE "serviceId" <> $1::uuid AND "nodeId" IS NOT NULL AND "desiredState" = 'RUNNING'::"DesiredTaskState"
             AND state = ANY($2::"TaskState"[])
           GROUP BY 1, 2) g
         GROUP BY 1`,
        [serviceId, [...ACTIVE_STATES]],
      ),
    ]);
    const nodes = nodeRows.map(nodeRow);
    const others = new Map(counted.map((r) => [r.nodeId, new Map(Object.entries(r.counts))]));
    const ids = [...new Set(counted.flatMap((r) => Object.keys(r.counts)))];
    const specRows = ids.length ? await this.prisma.service.findMany({ where: { id: { in: ids } }, select: { id: true, spec: true } }) : [];
    const specs = new Map<string, ServiceSpec>(specRows.map((r) => [r.id, specOf(r)]));
    specs.set(service.id, specOf(service));
    return { service, tasks, nodes, others, specs };
  }

  /**
   * Deletes finished tasks beyond the history each slot keeps: the newest TASK_HISTORY, or
   * maxAttempts + 1 if more (restart attempts are counted from them), and never a task the
   * running update remembers as failed. Returns how many went.
   */
  async prune(view: ReconcileView, keepFailed: readonly string[]): Promise<number> {
    const spec = specOf(view.service);
    const keep = Math.max(TASK_HISTORY, spec.restartPolicy.maxAttempts + 1);
    const remembered = new Set(keepFailed);
    const bySlot = new Map<string, TaskRow[]>();
    for (const t of view.tasks) {
      if (!isTerminal(t.state as TaskState) || remembered.has(t.id)) continue;
      const key = t.slot !== null ? `s${t.slot}` : `n${t.nodeId}`;
      bySlot.set(key, [...(bySlot.get(key) ?? []), t]);
    }
    const victims = [...bySlot.values()].flatMap((ts) => ts.sort((a, b) => b.createdAt.getTime() - a.createdAt.getTime()).slice(keep));
    if (victims.length === 0) return 0;
    const n = await this.prisma.task.deleteMany({ where: { id: { in: victims.map((t) => t.id) }, state: { notIn: [...ACTIVE_STATES] } } });
    return n.count;
  }

  /**
   * Writes the plan: stops, new tasks (assigned or pending with the scheduler's reason),
   * assignments of tasks that were pending, the update state, and their events — all or nothing,
   * one statement each however many tasks (plain SQL: through Prisma, inserting a thousand
   * tasks and their events cost half a second of CPU). Throws StalePlanError if the service
   * moved on since `view` was read.
   */
  async write(view: ReconcileView, r: ReconcileResult, s: ScheduleResult, now: number, rollback: RollbackWrite | undefined): Promise<FlotillaEvent[]> {
    const { service } = view;
    const byId = new Map(view.tasks.map((t) => [t.id, t]));
    const assigned = new Map(s.assignments.map((a) => [a.taskId, a.nodeId]));
    const reasons = new Map(s.unassigned.map((u) => [u.taskId, u.reason]));
    const at = utc(now);
    const events: EventInput[] = [];
    const task = (id: string, action: string, data: Record<string, unknown>): EventInput => ({ kind: "task", subjectId: id, action, data: { serviceId: service.id, ...data } });
    const updateState = rollback ? rollback.update : r.update;

    return this.prisma.sql.transaction(async (tx) => {
      const guard = await tx.query(
        `UPDATE "Service" SET "planVersion" = "planVersion" + 1, "updateState" = $5::jsonb, "updatedAt" = $6::timestamp(3)
           ${rollback ? `, spec = $7::jsonb, "previousSpec" = $8::jsonb, version = version + 1, "taskVersion" = "taskVersion" + 1` : ""}
         WHERE id = $1::uuid AND version = $2 AND "taskVersion" = $3 AND "planVersion" = $4
         RETURNING id`,
        [
          service.id,
          service.version,
          service.taskVersion,
          service.planVersion,
          updateState ? JSON.stringify(updateState) : null,
          at,
          ...(rollback ? [JSON.stringify(rollback.spec), JSON.stringify(specOf(service))] : []),
        ],
      );
      if (guard.length === 0) throw new StalePlanError(`service ${service.name} changed while it was being reconciled`);

      // A task that never reached an agent has nothing to stop: it ends here, as does a lost one
      // (orphaned) — both only from the state that was read.
      const stops = r.plan.stop.flatMap((stop) => {
        const t = byId.get(stop.taskId);
        if (!t) return [];
        const orphan = stop.orphan && !isTerminal(t.state as TaskState);
        const unsent = t.state === "NEW" || t.state === "PENDING";
        const to: TaskState | null = orphan ? "ORPHANED" : unsent ? "SHUTDOWN" : null;
        return [{ t, stop, to }];
      });
      if (stops.length) {
        await tx.query(
          `UPDATE "Task" t SET "desiredState" = 'SHUTDOWN'::"DesiredTaskState", message = v.message,
             state = coalesce(v.next::"TaskState", t.state),
             "finishedAt" = CASE WHEN v.next IS NULL THEN t."finishedAt" ELSE $1::timestamp(3) END, "updatedAt" = $1::timestamp(3)
           FROM unnest($2::uuid[], $3::text[], $4::text[], $5::text[]) AS v(id, message, next, read)
           WHERE t.id = v.id AND (v.next IS NULL OR t.state = v.read::"TaskState")`,
          [at, stops.map((x) => x.t.id), stops.map((x) => x.stop.message), stops.map((x) => x.to), stops.map((x) => x.t.state)],
        );
      }
      for (const { t, stop, to } of stops) {
        events.push(task(t.id, "stop", { slot: t.slot, reason: stop.reason, message: stop.message, ...(to ? { state: to } : {}) }));
      }

      if (r.newTasks.length) {
        const rows = r.newTasks.map((t) => {
          const reason = reasons.get(t.id);
          const state = reason ? "PENDING" : assigned.has(t.id) ? "ASSIGNED" : "PENDING";
          return { t, nodeId: assigned.get(t.id) ?? t.nodeId ?? null, state, message: reason ?? t.message ?? null };
        });
        await tx.query(
          `INSERT INTO "Task" (id, "serviceId", slot, "nodeId", "specVersion", state, "desiredState", message, "createdAt", "updatedAt")
           SELECT v.id, $1::uuid, v.slot, v.node, v.version, v.state::"TaskState", 'RUNNING'::"DesiredTaskState", v.message, $2::timestamp(3), $2::timestamp(3)
           FROM unnest($3::uuid[], $4::int[], $5::uuid[], $6::int[], $7::text[], $8::text[]) AS v(id, slot, node, version, state, message)`,
          [
            service.id,
            at,
            rows.map((x) => x.t.id),
            rows.map((x) => x.t.slot ?? null),
            rows.map((x) => x.nodeId),
            rows.map((x) => x.t.specVersion),
            rows.map((x) => x.state),
            rows.map((x) => x.message),
          ],
        );
        for (const x of rows) {
          events.push(task(x.t.id, "create", { slot: x.t.slot ?? null, nodeId: x.nodeId, state: assigned.has(x.t.id) ? "ASSIGNED" : "PENDING", message: x.message }));
        }
      }

      // Tasks that were already pending: placed now, or still waiting (maybe for a new reason).
      const fresh = new Set(r.newTasks.map((t) => t.id));
      const placed = [...assigned].filter(([taskId]) => !fresh.has(taskId));
      if (placed.length) {
        const moved = await tx.query<{ id: string }>(
          `UPDATE "Task" t SET state = 'ASSIGNED'::"TaskState", "nodeId" = v.node, message = NULL, "updatedAt" = $1::timestamp(3)
           FROM unnest($2::uuid[], $3::uuid[]) AS v(id, node)
           WHERE t.id = v.id AND t.state IN ('NEW'::"TaskState", 'PENDING'::"TaskState") AND t."desiredState" = 'RUNNING'::"DesiredTaskState"
           RETURNING t.id::text AS id`,
          [at, placed.map(([id]) => id), placed.map(([, node]) => node)],
        );
        const done = new Set(moved.map((m) => m.id));
        for (const [taskId, nodeId] of placed) if (done.has(taskId)) events.push(task(taskId, "assign", { nodeId, state: "ASSIGNED" }));
      }
      const waiting = [...reasons].filter(([taskId, reason]) => !fresh.has(taskId) && byId.get(taskId)?.message !== reason);
      if (waiting.length) {
        await tx.query(
          `UPDATE "Task" t SET state = 'PENDING'::"TaskState", message = v.reason, "updatedAt" = $1::timestamp(3)
           FROM unnest($2::uuid[], $3::text[]) AS v(id, reason)
           WHERE t.id = v.id AND t.state IN ('NEW'::"TaskState", 'PENDING'::"TaskState")`,
          [at, waiting.map(([id]) => id), waiting.map(([, reason]) => reason)],
        );
        for (const [taskId, reason] of waiting) events.push(task(taskId, "pending", { state: "PENDING", message: reason }));
      }
      if (rollback) events.push({ kind: "service", subjectId: service.id, action: "rollback", data: { name: service.name, reason: rollback.update.message, automatic: true } });
      return insertEvents(tx, events, now);
    });
  }
}
