// Reads what one reconcile needs and writes its plan in one transaction, re-checking that the
// service is still at the versions it was read at (Nomad's plan re-check). Any reconcile write
// bumps `planVersion`, so of two reconciles planned from the same view only one commits.
import { Injectable } from "@nestjs/common";
import {
  isTerminal,
  type ReconcileResult,
  type ScheduleResult,
  type ServiceSpec,
  type Task,
  type TaskState,
  type UpdateState,
} from "@flotilla/core";
import { PrismaService } from "../database/prisma.service";
import type { EventInput, FlotillaEvent } from "../events/events.service";
import { Prisma, type Node as NodeRow, type Service as ServiceRow, type Task as TaskRow } from "../generated/prisma/client";
import { ACTIVE_STATES, specOf } from "./mapping";

type Tx = Prisma.TransactionClient;
const json = (v: unknown) => v as Prisma.InputJsonValue;

/** Everything one reconcile reads. */
export interface ReconcileView {
  service: ServiceRow;
  tasks: TaskRow[];
  nodes: NodeRow[];
  /** Unfinished tasks of other services on nodes: they hold reservations and ports. */
  others: Task[];
  specs: Map<string, ServiceSpec>;
}

/** A task of another service as the scheduler's accounting reads it (a raw row). */
interface OtherTask {
  id: string;
  serviceId: string;
  nodeId: string;
  slot: number | null;
  specVersion: number;
  state: TaskState;
  desiredState: "RUNNING" | "SHUTDOWN";
  createdAt: Date;
  updatedAt: Date;
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
    const [tasks, nodes, others] = await Promise.all([
      this.prisma.task.findMany({ where: { serviceId } }),
      this.prisma.node.findMany(),
      // Only what the scheduler's accounting reads, without the model mapping: with thousands
      // of tasks on the cluster this is the largest read of a reconcile.
      this.prisma.$queryRaw<OtherTask[]>`
        SELECT id::text AS id, "serviceId"::text AS "serviceId", "nodeId"::text AS "nodeId", slot, "specVersion",
               state::text AS state, "desiredState"::text AS "desiredState", "createdAt", "updatedAt"
        FROM "Task"
        WHERE "serviceId" <> ${serviceId}::uuid AND "nodeId" IS NOT NULL
          AND state IN ('NEW', 'PENDING', 'ASSIGNED', 'ACCEPTED', 'PREPARING', 'STARTING', 'RUNNING')`,
    ]);
    const ids = [...new Set(others.map((t) => t.serviceId))];
    const otherTasks = others.map(
      (t): Task => ({
        id: t.id,
        serviceId: t.serviceId,
        nodeId: t.nodeId,
        ...(t.slot !== null ? { slot: t.slot } : {}),
        specVersion: t.specVersion,
        state: t.state,
        desiredState: t.desiredState === "RUNNING" ? "running" : "shutdown",
        createdAt: t.createdAt.getTime(),
        updatedAt: t.updatedAt.getTime(),
      }),
    );
    const specRows = ids.length ? await this.prisma.service.findMany({ where: { id: { in: ids } }, select: { id: true, spec: true } }) : [];
    const specs = new Map<string, ServiceSpec>(specRows.map((r) => [r.id, specOf(r)]));
    specs.set(service.id, specOf(service));
    return { service, tasks, nodes, others: otherTasks, specs };
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
   * assignments of tasks that were pending, the update state, and their events — all or nothing.
   * Throws StalePlanError if the service moved on since `view` was read.
   */
  async write(
    view: ReconcileView,
    r: ReconcileResult,
    s: ScheduleResult,
    now: number,
    rollback: RollbackWrite | undefined,
    record: (tx: Tx, events: EventInput[]) => Promise<FlotillaEvent[]>,
  ): Promise<FlotillaEvent[]> {
    const { service } = view;
    const byId = new Map(view.tasks.map((t) => [t.id, t]));
    const assigned = new Map(s.assignments.map((a) => [a.taskId, a.nodeId]));
    const reasons = new Map(s.unassigned.map((u) => [u.taskId, u.reason]));
    const at = new Date(now);
    const events: EventInput[] = [];
    const task = (id: string, action: string, data: Record<string, unknown>): EventInput => ({ kind: "task", subjectId: id, action, data: { serviceId: service.id, ...data } });

    return this.prisma.$transaction(
      async (tx) => {
        const current = specOf(service);
        const guard = await tx.service.updateMany({
          where: { id: service.id, version: service.version, taskVersion: service.taskVersion, planVersion: service.planVersion },
          data: {
            planVersion: { increment: 1 },
            updateState: rollback ? json(rollback.update) : r.update ? json(r.update) : Prisma.DbNull,
            ...(rollback
              ? { spec: json(rollback.spec), previousSpec: json(current), version: { increment: 1 }, taskVersion: { increment: 1 } }
              : {}),
          },
        });
        if (guard.count === 0) throw new StalePlanError(`service ${service.name} changed while it was being reconciled`);

        for (const stop of r.plan.stop) {
          const t = byId.get(stop.taskId);
          if (!t) continue;
          const orphan = stop.orphan && !isTerminal(t.state as TaskState);
          // A task that never reached an agent has nothing to stop: it ends here.
          const unsent = t.state === "NEW" || t.state === "PENDING";
          const data: Prisma.TaskUpdateManyMutationInput = {
            desiredState: "SHUTDOWN",
            message: stop.message,
            ...(orphan ? { state: "ORPHANED", finishedAt: at } : unsent ? { state: "SHUTDOWN", finishedAt: at } : {}),
          };
          await tx.task.updateMany({ where: { id: t.id, ...(orphan || unsent ? { state: t.state } : {}) }, data });
          events.push(task(t.id, "stop", { slot: t.slot, reason: stop.reason, message: stop.message, ...(data.state ? { state: data.state } : {}) }));
        }

        if (r.newTasks.length) {
          await tx.task.createMany({
            data: r.newTasks.map((t) => {
              const nodeId = assigned.get(t.id) ?? t.nodeId ?? null;
              const reason = reasons.get(t.id);
              return {
                id: t.id,
                serviceId: service.id,
                slot: t.slot ?? null,
                nodeId,
                specVersion: t.specVersion,
                state: reason ? "PENDING" : assigned.has(t.id) ? "ASSIGNED" : "PENDING",
                desiredState: "RUNNING",
                message: reason ?? t.message ?? null,
              } satisfies Prisma.TaskCreateManyInput;
            }),
          });
          for (const t of r.newTasks) {
            events.push(task(t.id, "create", { slot: t.slot ?? null, nodeId: assigned.get(t.id) ?? t.nodeId ?? null, state: assigned.has(t.id) ? "ASSIGNED" : "PENDING", message: reasons.get(t.id) ?? t.message ?? null }));
          }
        }

        // Tasks that were already pending: placed now, or still waiting (maybe for a new reason).
        const fresh = new Set(r.newTasks.map((t) => t.id));
        for (const [taskId, nodeId] of assigned) {
          if (fresh.has(taskId)) continue;
          const n = await tx.task.updateMany({ where: { id: taskId, state: { in: ["NEW", "PENDING"] }, desiredState: "RUNNING" }, data: { state: "ASSIGNED", nodeId, message: null } });
          if (n.count) events.push(task(taskId, "assign", { nodeId, state: "ASSIGNED" }));
        }
        for (const [taskId, reason] of reasons) {
          if (fresh.has(taskId) || byId.get(taskId)?.message === reason) continue;
          await tx.task.updateMany({ where: { id: taskId, state: { in: ["NEW", "PENDING"] } }, data: { state: "PENDING", message: reason } });
          events.push(task(taskId, "pending", { state: "PENDING", message: reason }));
        }
        if (rollback) events.push({ kind: "service", subjectId: service.id, action: "rollback", data: { name: service.name, reason: rollback.update.message, automatic: true } });
        return events.length ? record(tx, events) : [];
      },
      { timeout: 60_000, maxWait: 30_000 },
    );
  }
}
