// The reconcile worker: read the service, its tasks and the nodes; let libs/core decide
// (decideReconcile); write the decisions in one re-checked transaction; ask for dispatch on the
// nodes concerned. It decides nothing itself and never waits on an agent: dispatch is its own
// jobs (DispatchService), so a dead host cannot hold up another service's reconcile.
import { Inject, Injectable, Logger, OnModuleInit } from "@nestjs/common";
import { decideReconcile, dispatchTargets, type Clock, type Task } from "@flotilla/core";
import type { Job } from "bullmq";
import { randomUUID } from "node:crypto";
import { CLOCK } from "../common/clock";
import { EventsService } from "../events/events.service";
import { JobHandlers } from "../queues/job-handlers";
import { QUEUE, SWEEP_REASON, type ReconcileJob } from "../queues/queue-names";
import { QueuesService } from "../queues/queues.service";
import { previousSpecOf, specOf, toCoreTask, updateStateOf } from "./mapping";
import { ReconcileRepository, StalePlanError, type ReconcileView } from "./reconcile.repository";

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
    private readonly handlers: JobHandlers,
    @Inject(CLOCK) private readonly clock: Clock,
  ) {}

  onModuleInit(): void {
    this.handlers.register(QUEUE.reconcile, (job: Job) => this.handle(job.data as ReconcileJob));
  }

  private async handle(job: ReconcileJob): Promise<ReconcileOutcome> {
    // The sweep dispatches every node with open work itself, right after asking for these.
    const result = await this.reconcile(job.serviceId, { openWork: job.reason !== SWEEP_REASON });
    // Another reconcile committed first: plan again from what it wrote (the queue keeps exactly
    // one follow-up while this job is active).
    if (result.outcome === "stale") await this.queues.enqueueReconcile(job.serviceId, "stale plan");
    else await this.queues.markReconciled(job.serviceId);
    return result;
  }

  /**
   * One reconcile of one service; safe to run concurrently with itself (see ReconcileRepository).
   * `openWork` (default true): when nothing changes, dispatch the service's nodes that still have
   * work (an agent was unreachable, a claim went stale).
   */
  async reconcile(serviceId: string, opts: { openWork?: boolean } = {}): Promise<ReconcileOutcome> {
    let view = await this.repo.load(serviceId);
    if (!view) return { outcome: "gone", created: 0, stopped: 0, pending: 0 };
    const now = this.clock.now();
    const tasks = view.tasks.map(toCoreTask);
    let d = decide(view, tasks, now);
    if (d.kind === "needs-counts") {
      view = await this.repo.withCounts(view);
      d = decide(view, tasks, now);
      if (d.kind === "needs-counts") throw new Error("reconcile decision asked for the live counts it was given");
    }
    if (d.followUp) await this.queues.enqueueFollowUp(serviceId, d.followUp.atMs, d.followUp.reason, now);
    if (d.kind === "unchanged") {
      if (opts.openWork ?? true) await this.dispatch(serviceId, now);
      return { outcome: "unchanged", created: 0, stopped: 0, pending: d.pending };
    }
    try {
      await this.events.publish(await this.repo.write(view, d.result, d.placed, now, d.rollback));
    } catch (e) {
      if (e instanceof StalePlanError) return { outcome: "stale", created: 0, stopped: 0, pending: 0 };
      throw e;
    }
    await this.repo.prune(view, tasks, (d.rollback?.update ?? d.result.update)?.failedTaskIds ?? []);
    if (d.rollback) await this.queues.enqueueReconcile(serviceId, "automatic rollback");
    // The nodes this write gave work (core's dispatchTargets); work left open before is the
    // sweep's to re-dispatch, as it is when nothing changed.
    const ready = new Set(view.nodes.filter((n) => n.status === "ready").map((n) => n.id));
    await this.queues.enqueueDispatch(dispatchTargets(tasks, d.result.plan.stop, d.placed.assignments, ready), `service ${serviceId}`);
    this.logger.debug(
      `${view.service.name}: +${d.result.plan.create.length} -${d.result.plan.stop.length}, ${d.placed.unassigned.length} pending`,
    );
    return {
      outcome: "written",
      created: d.result.newTasks.length,
      stopped: d.result.plan.stop.length,
      pending: d.placed.unassigned.length,
    };
  }

  private async dispatch(serviceId: string, now: number): Promise<void> {
    await this.queues.enqueueDispatch(await this.repo.nodesToDispatch(serviceId, now), `service ${serviceId}`);
  }
}

/** The decision's inputs, from the rows one reconcile read. */
function decide(view: ReconcileView, tasks: readonly Task[], now: number) {
  const { service } = view;
  const previousSpec = previousSpecOf(service);
  const update = updateStateOf(service);
  return decideReconcile({
    serviceId: service.id,
    spec: specOf(service),
    taskVersion: service.taskVersion,
    ...(previousSpec ? { previousSpec } : {}),
    ...(update ? { update } : {}),
    tasks,
    nodes: view.nodes,
    others: view.others,
    specs: view.specs,
    now,
    newId: randomUUID,
  });
}
