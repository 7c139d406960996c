import { Inject, Injectable, Logger, OnApplicationBootstrap, OnModuleDestroy } from "@nestjs/common";
import type { Clock } from "@flotilla/core";
import { Worker, type Job } from "bullmq";
import { CLOCK } from "../common/clock";
import { APP_CONFIG, type AppConfig } from "../config/config";
import { PrismaService } from "../database/prisma.service";
import { RedisConnections } from "../database/redis";
import { ControlPlaneHealth } from "../health/control-plane-health";
import { JobHandlers } from "./job-handlers";
import { QUEUE, SWEEP_REASON, type QueueName } from "./queue-names";
import { nodesWithDispatchWork } from "../tasks/dispatch-work";
import { QueuesService } from "./queues.service";

// Jobs run at once per queue, by `consumers` BullMQ workers of `each` jobs. Dispatch: nodes
// served at once; each job waits mostly on its agent (one launch request per batch of
// containers), and their statements go to Postgres together (DispatchBatches), so many jobs at
// once cost few round trips. A BullMQ worker claims jobs one round trip after another until it
// holds its whole concurrency, and starts none of them before that: with 64 in one worker and
// the event loop busy with reconciles, the first 64 dispatches of a 5,000-node run started
// 11 s after they were claimed, when their 10 s locks had already lapsed. Eight workers of
// eight claim side by side, so a claimed job waits for at most eight round trips.
const CONSUMERS: Record<QueueName, { consumers: number; each: number }> = {
  reconcile: { consumers: 1, each: 8 },
  provision: { consumers: 1, each: 4 },
  sweep: { consumers: 1, each: 1 },
  dispatch: { consumers: 8, each: 8 },
  rebalance: { consumers: 1, each: 1 },
};
const LOCK_MS = 10_000;

/**
 * The consumer side: runs only in the `worker` and `all` roles. Redis is a cache of work here:
 * whenever it comes back (or comes back empty), and whenever a periodic self-check finds the
 * sweep's schedule gone, the schedule is re-created and a sweep runs at once, re-deriving every
 * reconcile and dispatch from Postgres.
 */
@Injectable()
export class WorkersService implements OnApplicationBootstrap, OnModuleDestroy {
  private readonly logger = new Logger("workers");
  private readonly workers: Worker[] = [];
  private selfCheck?: NodeJS.Timeout;

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly redis: RedisConnections,
    private readonly queues: QueuesService,
    private readonly handlers: JobHandlers,
    private readonly prisma: PrismaService,
    private readonly health: ControlPlaneHealth,
    @Inject(CLOCK) private readonly clock: Clock,
  ) {}

  async onApplicationBootstrap(): Promise<void> {
    for (const name of Object.values(QUEUE))
      for (let i = 0; i < CONSUMERS[name].consumers; i++) this.workers.push(this.consumer(name, i === 0));
    // At start the sweep's schedule is there before anything else runs; if Redis is away, the
    // recovery below creates it once Redis answers.
    await this.queues.ensureSweep().catch((e: Error) => this.logger.warn(`sweep schedule not created yet: ${e.message}`));
    this.health.onRecovered((what) => this.restore(what));
    this.selfCheck = setInterval(() => void this.checkSchedule(), Math.min(this.config.sweepIntervalMs, 10_000));
    this.logger.log(`workers started for queues: ${Object.values(QUEUE).join(", ")}`);
  }

  /** One BullMQ worker on a queue; `checksStalls`: one per queue and process looks for stalled jobs. */
  private consumer(name: QueueName, checksStalls: boolean): Worker {
    const worker = new Worker(name, (job) => this.run(name, job), {
      connection: this.redis.open(),
      prefix: this.config.queuePrefix,
      concurrency: CONSUMERS[name].each,
      // A killed worker's active jobs stay locked until the lock expires and a stall check
      // runs (BullMQ's defaults: 30 s each). Meanwhile a node's dispatch requests collapse
      // into the dead job, so its starts waited up to 64 s after an API kill; 10 s locks
      // (renewed every 5 s while a job runs) checked every 5 s bound that to ~15 s.
      lockDuration: LOCK_MS,
      stalledInterval: LOCK_MS / 2,
      skipStalledCheck: !checksStalls,
    });
    worker.on("failed", (job, err) => this.logger.warn(`${name} job ${job?.id ?? "?"} failed: ${err.message}`));
    worker.on("error", (err) => this.logger.error(`${name} worker: ${err.message}`));
    return worker;
  }

  /** Re-creates the sweep's schedule and sweeps now: nothing Redis held is needed any more. */
  private async restore(why: string): Promise<void> {
    await this.queues.ensureSweep();
    const swept = await this.sweep({ all: true });
    this.logger.log(`queues restored (${why}): ${swept.services} services to reconcile, ${swept.nodes} nodes to dispatch`);
  }

  private async checkSchedule(): Promise<void> {
    try {
      if (!(await this.queues.hasSweep())) await this.restore("the sweep's schedule was missing");
    } catch (e) {
      this.logger.warn(`queue self-check failed: ${(e as Error).message}`);
    }
  }

  private async run(name: QueueName, job: Job): Promise<unknown> {
    if (name === QUEUE.sweep) return this.sweep({ all: false });
    const handler = this.handlers.get(name);
    if (!handler) throw new Error(`no handler registered for queue "${name}" in this build`);
    const started = this.clock.now();
    const what = `${name} job ${job.id ?? "?"} (${job.name} ${JSON.stringify(job.data).slice(0, 160)})`;
    this.logger.debug(`${what}: started, queued ${started - job.timestamp} ms before`);
    const result = await handler(job);
    this.logger.debug(`${what}: done in ${this.clock.now() - started} ms: ${JSON.stringify(result ?? null).slice(0, 160)}`);
    return result;
  }

  /**
   * Enqueues a reconcile for every service and a dispatch for every node with open dispatch
   * work; duplicates of queued ones collapse. The periodic sweep (`all` false) passes over
   * services reconciled within its last interval, so each service is still reconciled at least
   * every two intervals: at 30 services of 5,000 replicas, reconciling each again every interval
   * while they converged was most of the reconcile queue's work, all of it finding nothing to do.
   * After Redis comes back (`all`), every service is reconciled at once.
   */
  private async sweep(opts: { all: boolean }): Promise<{ services: number; nodes: number }> {
    const ids = (await this.prisma.service.findMany({ select: { id: true } })).map((s) => s.id);
    const recent = opts.all ? new Set<string>() : await this.queues.reconciledRecently(ids);
    const services = ids.filter((id) => !recent.has(id));
    for (const id of services) await this.queues.enqueueReconcile(id, SWEEP_REASON);
    const nodes = await nodesWithDispatchWork(this.prisma.sql, this.clock.now());
    await this.queues.enqueueDispatch(nodes, "sweep");
    return { services: services.length, nodes: nodes.length };
  }

  /** Lets running jobs finish (BullMQ's close waits for them) before connections go away. */
  async onModuleDestroy(): Promise<void> {
    clearInterval(this.selfCheck);
    await Promise.all(this.workers.map((w) => w.close()));
  }
}
