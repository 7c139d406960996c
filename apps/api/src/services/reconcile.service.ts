// The reconcile worker: read the service, its tasks and the nodes; let libs/core decide
// (reconcileService, then schedule); write the decisions in one re-checked transaction; then
// dispatch. It decides nothing itself.
import { Injectable, Logger, OnModuleInit } from "@nestjs/common";
import {
  EMPTY_PLAN,
  isLive,
  nextFollowUp,
  reconcileService,
  schedule,
  startUpdate,
  type ReconcileResult,
} from "@flotilla/core";
import type { Job } from "bullmq";
import { randomUUID } from "node:crypto";
import { DispatchService } from "../dispatch/dispatch.service";
import { EventsService, type FlotillaEvent } from "../events/events.service";
import { JobHandlers } from "../queues/job-handlers";
import { QUEUE, type ReconcileJob } from "../queues/queue-names";
import { QueuesService } from "../queues/queues.service";
import { previousSpecOf, specOf, toCoreNode, toCoreTask, updateStateOf } from "./mapping";
import { ReconcileRepository, StalePlanError, type RollbackWrite } from "./reconcile.repository";

/** How one reconcile ended, for logs and tests. */
export interface ReconcileOutcome {
  outcome: "gone" | "stale" | "unchanged" | "written";
  created: number;
  stopped: number;
  pending: number;
}

@Injectable()
export class ReconcileService implements OnModuleInit {
  private readonly logger = new Logger("reconcile");

  constructor(
    private readonly repo: ReconcileRepository,
    private readonly events: EventsService,
    private readonly queues: QueuesService,
    private readonly dispatch: DispatchService,
    private readonly handlers: JobHandlers,
  ) {}

  onModuleInit(): void {
    this.handlers.register(QUEUE.reconcile, (job: Job) => this.handle(job.data as ReconcileJob));
  }

  private async handle(job: ReconcileJob): Promise<ReconcileOutcome> {
    const result = await this.reconcile(job.serviceId);
    // Another reconcile committed first: plan again from what it wrote (the queue keeps exactly
    // one follow-up while this job is active).
    if (result.outcome === "stale") await this.queues.enqueueReconcile(job.serviceId, "stale plan");
    return result;
  }

  /** One reconcile of one service; safe to run concurrently with itself (see ReconcileRepository). */
  async reconcile(serviceId: string): Promise<ReconcileOutcome> {
    const began = Date.now();
    const view = await this.repo.load(serviceId);
    if (!view) return { outcome: "gone", created: 0, stopped: 0, pending: 0 };
    const now = Date.now();
    const { service } = view;
    const nodes = view.nodes.map(toCoreNode);
    const previousSpec = previousSpecOf(service);
    const update = updateStateOf(service);
    let r: ReconcileResult = reconcileService({
      serviceId,
      spec: specOf(service),
      version: service.taskVersion,
      ...(previousSpec ? { previousSpec } : {}),
      tasks: view.tasks.map(toCoreTask),
      nodes,
      ...(update ? { update } : {}),
      now,
      newId: randomUUID,
    });

    // The update's failure action asked for a rollback: install the spec as a new version and
    // plan again from it, rather than writing tasks for the version being abandoned.
    let rollback: RollbackWrite | undefined;
    if (r.rollbackTo) {
      const target = service.taskVersion + 1;
      rollback = { spec: r.rollbackTo, update: startUpdate(target, now, { rollback: true, equivalentVersions: [service.taskVersion - 1] }) };
      r = { plan: EMPTY_PLAN, newTasks: [], tasks: r.tasks };
    }

    const pending = r.tasks.filter((t) => isLive(t) && (t.state === "NEW" || t.state === "PENDING"));
    const placed = rollback
      ? { assignments: [], unassigned: [] }
      : schedule(
          pending.map((t) => ({ id: t.id, serviceId, ...(t.nodeId ? { nodeId: t.nodeId } : {}) })),
          nodes,
          r.tasks,
          view.specs,
          { now, liveCounts: view.others },
        );

    // Nothing decided (the common case for sweeps and "tasks started"): no write, no version bump.
    const byId = new Map(view.tasks.map((t) => [t.id, t]));
    const unchanged =
      !rollback &&
      r.plan.create.length === 0 &&
      r.plan.stop.length === 0 &&
      placed.assignments.length === 0 &&
      placed.unassigned.every((u) => byId.get(u.taskId)?.message === u.reason) &&
      JSON.stringify(r.update ?? null) === JSON.stringify(update ?? null);
    if (unchanged) {
      // A wait still under way (monitor period, delays) may have moved: a task's start time is
      // the agent's once a heartbeat confirms it. Its follow-up must stand even when nothing
      // else changed, or the update would sit "monitoring" until the next sweep.
      const next = nextFollowUp(r.plan);
      if (next) await this.followUp(serviceId, next.atMs, next.reason);
      await this.dispatch.syncService(serviceId);
      return { outcome: "unchanged", created: 0, stopped: 0, pending: placed.unassigned.length };
    }

    const planned = Date.now();
    let events: FlotillaEvent[];
    try {
      events = await this.repo.write(view, r, placed, now, rollback);
    } catch (e) {
      if (e instanceof StalePlanError) return { outcome: "stale", created: 0, stopped: 0, pending: 0 };
      throw e;
    }
    const written = Date.now();
    await this.events.publish(events);
    await this.repo.prune(view, (rollback?.update ?? r.update)?.failedTaskIds ?? []);

    if (rollback) await this.queues.enqueueReconcile(serviceId, "automatic rollback");
    const next = nextFollowUp(r.plan);
    if (next) await this.followUp(serviceId, next.atMs, next.reason);
    const dispatching = Date.now();
    await this.dispatch.syncService(serviceId);
    this.logger.debug(
      `${service.name}: +${r.plan.create.length} -${r.plan.stop.length}, ${placed.unassigned.length} pending; ` +
        `load+plan ${planned - began} ms, write ${written - planned} ms, publish ${dispatching - written} ms, dispatch ${Date.now() - dispatching} ms`,
    );
    return { outcome: "written", created: r.newTasks.length, stopped: r.plan.stop.length, pending: placed.unassigned.length };
  }

  /**
   * A delayed reconcile (restart delay, update delay, monitor period). Its own job id rather
   * than the service's deduplication key: a delayed job holding that key would swallow an
   * immediate request (a scale) until the delay ran out.
   */
  private async followUp(serviceId: string, atMs: number, reason: string): Promise<void> {
    const delay = Math.max(0, atMs - Date.now());
    const data: ReconcileJob = { serviceId, reason: `follow-up: ${reason}` };
    await this.queues
      .queue(QUEUE.reconcile)
      .add("reconcile", data, { jobId: `followup-${serviceId}-${atMs}`, delay, removeOnComplete: true, removeOnFail: { count: 100 } });
  }
}
