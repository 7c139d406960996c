// The only writer of Task rows. Every move is conditional on the state it was decided from
// (forward only, libs/core's state machine), so a late writer never moves a task backwards and
// two writers never both take one step. Each method is one statement or one transaction, and
// writes the moves' events with them.
import { Injectable } from "@nestjs/common";
import { stopOutcome, type ReconcileResult, type ScheduleResult, type TaskChange, type TaskEndpoint, type TaskState } from "@flotilla/core";
import { PrismaService } from "../database/prisma.service";
import { type SqlRunner, desiredStateSql, taskStateSql, utc } from "../database/sql";
import { EVENT_RETURNING, eventsFrom, type EventRow } from "../events/event-rows";
import type { EventInput, FlotillaEvent } from "../events/events.service";
import type { Prisma, Task as TaskRow } from "../generated/prisma/client";
import { ACTIVE_STATES } from "../services/mapping";

/** How one launch ended: a started container, or the agent's error. */
export interface LaunchOutcome {
  task: Pick<TaskRow, "id" | "slot" | "serviceId">;
  node: string;
  containerId?: string;
  endpoints?: TaskEndpoint[];
  /** The container has a health check not yet passed: the task is STARTING, not RUNNING. */
  starting?: boolean;
  error?: string;
  /** The agent did not answer: the container may exist; the task stays claimed, nothing is recorded. */
  unanswered?: boolean;
}

const launchState = (o: LaunchOutcome): TaskState => (!o.containerId ? "REJECTED" : o.starting ? "STARTING" : "RUNNING");

const taskEvent = (serviceId: string, id: string, action: string, data: Record<string, unknown>): EventInput => ({
  kind: "task",
  subjectId: id,
  action,
  data: { serviceId, ...data },
});

@Injectable()
export class TasksRepository {
  constructor(private readonly prisma: PrismaService) {}

  /**
   * Writes a reconcile's task decisions inside the caller's transaction: stops, new tasks
   * (assigned, or pending with the scheduler's reason), placements of tasks that were pending,
   * and new reasons for those still waiting. Returns their events, to be written with them.
   */
  async writePlan(
    tx: SqlRunner,
    serviceId: string,
    read: readonly TaskRow[],
    r: ReconcileResult,
    s: ScheduleResult,
    now: number,
  ): Promise<EventInput[]> {
    const byId = new Map(read.map((t) => [t.id, t]));
    const fresh = new Set(r.newTasks.map((t) => t.id));
    return [
      ...(await this.stop(tx, serviceId, byId, r, now)),
      ...(await this.insert(tx, serviceId, r, s, now)),
      ...(await this.assign(
        tx,
        serviceId,
        s.assignments.filter((a) => !fresh.has(a.taskId)),
        now,
      )),
      ...(await this.markWaiting(
        tx,
        serviceId,
        s.unassigned.filter((u) => !fresh.has(u.taskId) && byId.get(u.taskId)?.message !== u.reason),
        now,
      )),
    ];
  }

  private async stop(
    tx: SqlRunner,
    serviceId: string,
    byId: ReadonlyMap<string, TaskRow>,
    r: ReconcileResult,
    now: number,
  ): Promise<EventInput[]> {
    const stops = r.plan.stop.flatMap((stop) => {
      const t = byId.get(stop.taskId);
      return t ? [{ t, stop, to: stopOutcome(stop, t.state as TaskState) }] : [];
    });
    if (stops.length === 0) return [];
    await tx.query(
      `UPDATE "Task" t SET "desiredState" = ${desiredStateSql("shutdown")}, message = v.message,
         state = coalesce(v.next::"TaskState", t.state),
         "finishedAt" = CASE WHEN v.next IS NULL THEN t."finishedAt" ELSE $1::timestamp(3) END, "updatedAt" = $1::timestamp(3)
       FROM unnest($2::uuid[], $3::text[], $4::text[], $5::text[]) AS v(id, message, next, read)
       WHERE t.id = v.id AND (v.next IS NULL OR t.state = v.read::"TaskState")`,
      [utc(now), stops.map((x) => x.t.id), stops.map((x) => x.stop.message), stops.map((x) => x.to), stops.map((x) => x.t.state)],
    );
    return stops.map(({ t, stop, to }) =>
      taskEvent(serviceId, t.id, "stop", { slot: t.slot, reason: stop.reason, message: stop.message, ...(to ? { state: to } : {}) }),
    );
  }

  private async insert(tx: SqlRunner, serviceId: string, r: ReconcileResult, s: ScheduleResult, now: number): Promise<EventInput[]> {
    if (r.newTasks.length === 0) return [];
    const assigned = new Map(s.assignments.map((a) => [a.taskId, a.nodeId]));
    const reasons = new Map(s.unassigned.map((u) => [u.taskId, u.reason]));
    const rows = r.newTasks.map((t) => {
      const reason = reasons.get(t.id);
      const state = !reason && assigned.has(t.id) ? "ASSIGNED" : "PENDING";
      return { t, nodeId: assigned.get(t.id) ?? t.nodeId ?? null, state, message: reason ?? t.message ?? null };
    });
    await tx.query(
      `INSERT INTO "Task" (id, "serviceId", slot, "nodeId", "specVersion", state, "desiredState", message, "createdAt", "updatedAt")
       SELECT v.id, $1::uuid, v.slot, v.node, v.version, v.state::"TaskState", ${desiredStateSql("running")}, v.message, $2::timestamp(3), $2::timestamp(3)
       FROM unnest($3::uuid[], $4::int[], $5::uuid[], $6::int[], $7::text[], $8::text[]) AS v(id, slot, node, version, state, message)`,
      [
        serviceId,
        utc(now),
        rows.map((x) => x.t.id),
        rows.map((x) => x.t.slot ?? null),
        rows.map((x) => x.nodeId),
        rows.map((x) => x.t.specVersion),
        rows.map((x) => x.state),
        rows.map((x) => x.message),
      ],
    );
    return rows.map((x) =>
      taskEvent(serviceId, x.t.id, "create", {
        slot: x.t.slot ?? null,
        nodeId: x.nodeId,
        state: assigned.has(x.t.id) ? "ASSIGNED" : "PENDING",
        message: x.message,
      }),
    );
  }

  /** Tasks that were pending, placed now. */
  private async assign(tx: SqlRunner, serviceId: string, placed: ScheduleResult["assignments"], now: number): Promise<EventInput[]> {
    if (placed.length === 0) return [];
    const moved = await tx.query<{ id: string }>(
      `UPDATE "Task" t SET state = ${taskStateSql("ASSIGNED")}, "nodeId" = v.node, message = NULL, "updatedAt" = $1::timestamp(3)
       FROM unnest($2::uuid[], $3::uuid[]) AS v(id, node)
       WHERE t.id = v.id AND t.state IN (${taskStateSql("NEW")}, ${taskStateSql("PENDING")}) AND t."desiredState" = ${desiredStateSql("running")}
       RETURNING t.id::text AS id`,
      [utc(now), placed.map((a) => a.taskId), placed.map((a) => a.nodeId)],
    );
    const done = new Set(moved.map((m) => m.id));
    return placed
      .filter((a) => done.has(a.taskId))
      .map((a) => taskEvent(serviceId, a.taskId, "assign", { nodeId: a.nodeId, state: "ASSIGNED" }));
  }

  /** Tasks still waiting, with a new reason. */
  private async markWaiting(tx: SqlRunner, serviceId: string, waiting: ScheduleResult["unassigned"], now: number): Promise<EventInput[]> {
    if (waiting.length === 0) return [];
    await tx.query(
      `UPDATE "Task" t SET state = ${taskStateSql("PENDING")}, message = v.reason, "updatedAt" = $1::timestamp(3)
       FROM unnest($2::uuid[], $3::text[]) AS v(id, reason)
       WHERE t.id = v.id AND t.state IN (${taskStateSql("NEW")}, ${taskStateSql("PENDING")})`,
      [utc(now), waiting.map((u) => u.taskId), waiting.map((u) => u.reason)],
    );
    return waiting.map((u) => taskEvent(serviceId, u.taskId, "pending", { state: "PENDING", message: u.reason }));
  }

  /** Deletes finished tasks (history beyond what is kept); never an active one. */
  async prune(ids: readonly string[]): Promise<number> {
    if (ids.length === 0) return 0;
    const n = await this.prisma.task.deleteMany({ where: { id: { in: [...ids] }, state: { notIn: [...ACTIVE_STATES] } } });
    return n.count;
  }

  /**
   * Claims tasks for a dispatcher (ASSIGNED, or a stale claim without a container → ACCEPTED):
   * of two dispatchers only one wins a task. Returns the ids won.
   */
  async claim(ids: readonly string[], now: number, staleBefore: number): Promise<Set<string>> {
    if (ids.length === 0) return new Set();
    const rows = await this.prisma.sql.query<{ id: string }>(
      `UPDATE "Task" SET state = ${taskStateSql("ACCEPTED")}, "updatedAt" = $2::timestamp(3)
       WHERE id = ANY($1::uuid[]) AND "desiredState" = ${desiredStateSql("running")}
         AND (state = ${taskStateSql("ASSIGNED")} OR (state = ${taskStateSql("ACCEPTED")} AND "containerId" IS NULL AND "updatedAt" < $3::timestamp(3)))
       RETURNING id::text AS id`,
      [[...ids], utc(now), utc(staleBefore)],
    );
    return new Set(rows.map((r) => r.id));
  }

  /**
   * Records launch outcomes — RUNNING with the container (the heartbeat confirms it or reports
   * the exit), or REJECTED with the agent's error — and their events, in one statement. Only
   * tasks still ACCEPTED move: a heartbeat may have been faster, and then only the endpoints
   * (the mesh's backends) are recorded, as long as it is still this container.
   */
  async recordLaunches(outcomes: readonly LaunchOutcome[], now: number): Promise<FlotillaEvent[]> {
    if (outcomes.length === 0) return [];
    const rows = await this.prisma.sql.query<EventRow>(
      `WITH v AS (
         SELECT * FROM unnest($2::uuid[], $3::text[], $4::text[], $5::text[], $6::text[], $7::jsonb[]) WITH ORDINALITY AS v(id, next, cid, ep, err, ev, n)),
       moved AS (
         UPDATE "Task" t SET state = v.next::"TaskState", "containerId" = coalesce(v.cid, t."containerId"),
           endpoints = CASE WHEN v.next IN ('${"RUNNING" satisfies TaskState}', '${"STARTING" satisfies TaskState}') THEN v.ep::jsonb ELSE t.endpoints END,
           error = CASE WHEN v.next = '${"REJECTED" satisfies TaskState}' THEN v.err ELSE t.error END,
           "startedAt" = CASE WHEN v.next = '${"RUNNING" satisfies TaskState}' THEN $1::timestamp(3) ELSE t."startedAt" END,
           "finishedAt" = CASE WHEN v.next = '${"REJECTED" satisfies TaskState}' THEN $1::timestamp(3) ELSE t."finishedAt" END,
           "updatedAt" = $1::timestamp(3)
         FROM v WHERE t.id = v.id AND t.state = ${taskStateSql("ACCEPTED")}
         RETURNING t.id, v.ev, v.n),
       meshed AS (
         UPDATE "Task" t SET endpoints = v.ep::jsonb
         FROM v WHERE t.id = v.id AND v.ep IS NOT NULL AND t.state <> ${taskStateSql("ACCEPTED")} AND t."containerId" = v.cid)
       INSERT INTO "Event" (at, kind, "subjectId", action, data)
       SELECT $1::timestamp(3), 'task', m.id::text, 'state', m.ev FROM moved m ORDER BY m.n
       ${EVENT_RETURNING}`,
      [
        utc(now),
        outcomes.map((o) => o.task.id),
        outcomes.map(launchState),
        outcomes.map((o) => o.containerId ?? null),
        outcomes.map((o) => (o.endpoints ? JSON.stringify(o.endpoints) : null)),
        outcomes.map((o) => (o.containerId ? null : (o.error ?? "rejected"))),
        outcomes.map((o) =>
          JSON.stringify({
            serviceId: o.task.serviceId,
            slot: o.task.slot,
            state: launchState(o),
            node: o.node,
            ...(o.containerId ? {} : { error: o.error }),
          }),
        ),
      ],
    );
    return eventsFrom(rows);
  }

  /** Moves a task to a final state if it is still in one of `from`; returns its event, or none. */
  async finish(
    task: Pick<TaskRow, "id" | "serviceId" | "slot">,
    from: readonly TaskState[],
    to: TaskState,
    now: number,
    exitCode?: number,
  ): Promise<FlotillaEvent[]> {
    const rows = await this.prisma.sql.query<EventRow>(
      `WITH moved AS (
         UPDATE "Task" SET state = $2::"TaskState", "finishedAt" = $3::timestamp(3), "exitCode" = coalesce($4, "exitCode"), "updatedAt" = $3::timestamp(3)
         WHERE id = $1::uuid AND state = ANY($5::"TaskState"[]) RETURNING id)
       INSERT INTO "Event" (at, kind, "subjectId", action, data)
       SELECT $3::timestamp(3), 'task', moved.id::text, 'state', $6::jsonb FROM moved
       ${EVENT_RETURNING}`,
      [task.id, to, utc(now), exitCode ?? null, [...from], JSON.stringify({ serviceId: task.serviceId, slot: task.slot, state: to })],
    );
    return eventsFrom(rows);
  }

  /**
   * Writes a heartbeat fold: the moves (each conditional on the state read) with their events,
   * and the "missing from reports" counts, in one statement.
   */
  async applyFold(
    changes: readonly (TaskChange & { serviceId: string; slot: number | null })[],
    missing: ReadonlyMap<string, number>,
    now: number,
  ): Promise<FlotillaEvent[]> {
    if (changes.length === 0 && missing.size === 0) return [];
    const time = (ms: number | undefined) => (ms !== undefined ? utc(ms) : null);
    const event = (c: (typeof changes)[number]) =>
      c.next.state === c.from
        ? null
        : JSON.stringify({
            serviceId: c.serviceId,
            slot: c.slot,
            state: c.next.state,
            ...(c.next.exitCode !== undefined ? { exitCode: c.next.exitCode } : {}),
            ...(c.next.error ? { error: c.next.error } : {}),
          });
    const rows = await this.prisma.sql.query<EventRow>(
      `WITH counted AS (
         UPDATE "Task" t SET "missingReports" = m.n FROM unnest($11::uuid[], $12::int[]) AS m(id, n) WHERE t.id = m.id),
       v AS (
         SELECT * FROM unnest($2::uuid[], $3::text[], $4::text[], $5::text[], $6::int[], $7::text[], $8::text[], $9::text[], $10::jsonb[])
           WITH ORDINALITY AS v(id, prev, state, cid, exit, err, started, finished, ev, n)),
       moved AS (
         UPDATE "Task" t SET state = v.state::"TaskState", "containerId" = coalesce(v.cid, t."containerId"),
           "exitCode" = coalesce(v.exit, t."exitCode"), error = coalesce(v.err, t.error),
           "startedAt" = coalesce(v.started::timestamp(3), t."startedAt"), "finishedAt" = coalesce(v.finished::timestamp(3), t."finishedAt"),
           "updatedAt" = $1::timestamp(3)
         FROM v WHERE t.id = v.id AND t.state = v.prev::"TaskState"
         RETURNING t.id, v.ev, v.n)
       INSERT INTO "Event" (at, kind, "subjectId", action, data)
       SELECT $1::timestamp(3), 'task', m.id::text, 'state', m.ev FROM moved m WHERE m.ev IS NOT NULL ORDER BY m.n
       ${EVENT_RETURNING}`,
      [
        utc(now),
        changes.map((c) => c.taskId),
        changes.map((c) => c.from),
        changes.map((c) => c.next.state),
        changes.map((c) => c.containerId ?? null),
        changes.map((c) => c.next.exitCode ?? null),
        changes.map((c) => c.next.error ?? null),
        changes.map((c) => time(c.next.startedAt)),
        changes.map((c) => time(c.next.finishedAt)),
        changes.map(event),
        [...missing.keys()].filter((id) => !changes.some((c) => c.taskId === id)),
        [...missing].filter(([id]) => !changes.some((c) => c.taskId === id)).map(([, n]) => n),
      ],
    );
    return eventsFrom(rows);
  }

  /**
   * Inside a node's down transaction: tasks already being stopped there will never be reported
   * stopped by a dead agent, so they end ORPHANED; live ones are the orchestrator's to replace.
   */
  async orphanStopping(tx: SqlRunner, nodeIds: readonly string[], now: number): Promise<void> {
    await tx.query(
      `UPDATE "Task" SET state = ${taskStateSql("ORPHANED")}, "finishedAt" = $2::timestamp(3), "updatedAt" = $2::timestamp(3)
       WHERE "nodeId" = ANY($1::uuid[]) AND "desiredState" = ${desiredStateSql("shutdown")} AND state = ANY($3::"TaskState"[])`,
      [[...nodeIds], utc(now), [...ACTIVE_STATES]],
    );
  }

  /** Inside a node's removal transaction (Prisma's): its unfinished tasks end ORPHANED. Returns them. */
  async orphanAll(
    tx: Prisma.TransactionClient,
    nodeId: string,
    message: string,
    now: number,
  ): Promise<{ id: string; serviceId: string }[]> {
    return tx.$queryRawUnsafe<{ id: string; serviceId: string }[]>(
      `UPDATE "Task" SET state = ${taskStateSql("ORPHANED")}, "desiredState" = ${desiredStateSql("shutdown")}, "finishedAt" = $2::timestamp(3), message = $3, "updatedAt" = $2::timestamp(3)
       WHERE "nodeId" = $1::uuid AND state = ANY($4::"TaskState"[])
       RETURNING id::text AS id, "serviceId"::text AS "serviceId"`,
      nodeId,
      utc(now),
      message,
      [...ACTIVE_STATES],
    );
  }
}
