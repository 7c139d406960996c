// The reconcile worker: read the service, its tasks and the nodes; let libs/core decide
// (decideReconcile); write the decisions in one re-checked transaction; ask for dispatch on the
// nodes concerned. It decides nothing itself and never waits on an agent: dispatch is its own
// jobs (DispatchService), so a dead host cannot hold up another service's reconcile.
import { Inject, Injectable, Logger, OnModuleInit } from "@nestjs/common";
import { decideReconcile, type Clock } from "@flotilla/core";
import type { Job } from "bullmq";
import { randomUUID } from "node:crypto";
import { CLOCK } from "../common/clock";
import { EventsService } from "../events/events.service";
import { JobHandlers } from "../queues/job-handlers";
import { QUEUE, type ReconcileJob } from "../queues/queue-names";
import { QueuesService } from "../queues/queues.service";
import { previousSpecOf, specOf, toCoreNode, toCoreTask, updateStateOf } from "./mapping";
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
    const result = await this.reconcile(job.serviceId);
    // Another reconcile committed first: plan again from what it wrote (the queue keeps exactly
    // one follow-up while this job is active).
    if (result.outcome === "stale") await this.queues.enqueueReconcile(job.serviceId, "stale plan");
    return result;
  }

  /** One reconcile of one service; safe to run concurrently with itself (see ReconcileRepository). */
  async reconcile(serviceId: string): Promise<ReconcileOutcome> {
    const view = await this.repo.load(serviceId);
    if (!view) return { outcome: "gone", created: 0, stopped: 0, pending: 0 };
    const now = this.clock.now();
    const d = decide(view, now);
    if (d.followUp) await this.queues.enqueueFollowUp(serviceId, d.followUp.atMs, d.followUp.reason, now);
    if (d.kind === "unchanged") {
      // Dispatch work may still be open (an agent was unreachable, a claim went stale).
      await this.dispatch(serviceId, now);
      return { outcome: "unchanged", created: 0, stopped: 0, pending: d.pending };
    }
    try {
      await this.events.publish(await this.repo.write(view, d.result, d.placed, now, d.rollback));
    } catch (e) {
      if (e instanceof StalePlanError) return { outcome: "stale", created: 0, stopped: 0, pending: 0 };
      throw e;
    }
    await this.repo.prune(view, (d.rollback?.update ?? d.result.update)?.failedTaskIds ?? []);
    if (d.rollback) await this.queues.enqueueReconcile(serviceId, "automatic rollback");
    await this.dispatch(serviceId, now);
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
function decide(view: ReconcileView, now: number) {
  const { service } = view;
  const previousSpec = previousSpecOf(service);
  const update = updateStateOf(service);
  return decideReconcile({
    serviceId: service.id,
    spec: specOf(service),
    taskVersion: service.taskVersion,
    ...(previousSpec ? { previousSpec } : {}),
    ...(update ? { update } : {}),
    tasks: view.tasks.map(toCoreTask),
    nodes: view.nodes.map(toCoreNode),
    others: view.others,
    specs: view.specs,
    now,
    newId: randomUUID,
  });
}
