import { Inject, Injectable, OnModuleDestroy } from "@nestjs/common";
import { UnavailableError } from "@flotilla/core";
import { Queue, type JobsOptions } from "bullmq";
import { createHash } from "node:crypto";
import { APP_CONFIG, type AppConfig } from "../config/config";
import { RedisConnections } from "../database/redis";
import {
  AUTO_REBALANCE_KEY,
  dispatchKey,
  QUEUE,
  provisionJobId,
  reconciledKey,
  reconcileKey,
  type AutoRebalanceJob,
  type DispatchJob,
  type DispatchPart,
  type ProvisionJob,
  type QueueName,
  type ReconcileJob,
  type RemoveContainersJob,
} from "./queue-names";

const KEEP = { removeOnComplete: { count: 1000 }, removeOnFail: { count: 5000 } } satisfies JobsOptions;
// A node's dispatch waits this long before it runs, so that the tasks several services'
// reconciles put on one node go in one job (requests meanwhile collapse into it).
const DISPATCH_GATHER_MS = 250;
// Nodes returning together (a switch, a power feed) become ready within a heartbeat period or so.
const AUTO_REBALANCE_GATHER_MS = 1_000;

/** Redis could not take a job: what was written to Postgres stands, and the sweep picks it up. */
export class RedisUnavailableError extends UnavailableError {
  constructor(cause: unknown) {
    super(`Redis is unavailable: ${(cause as Error)?.message ?? String(cause)}`, { dependency: "redis" });
  }
}

// A queue first used while Redis is down waits for its connection instead of failing: a request
// must not hang on it. Longer than a healthy Redis ever takes here, short enough for a user.
const REDIS_CALL_MS = 3_000;
// Dispatch jobs per Redis transaction (enqueueDispatch).
const DISPATCH_ADD_SLICE = 500;

/** A node with dispatch work, and which parts: tasks to start, tasks to stop. */
export interface NodeDispatch {
  nodeId: string;
  start: boolean;
  stop: boolean;
}

/** Runs a queue operation; a failure or no answer within REDIS_CALL_MS is a RedisUnavailableError. */
async function redisCall<T>(fn: () => Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${REDIS_CALL_MS} ms`)), REDIS_CALL_MS);
  });
  try {
    return await Promise.race([fn(), late]);
  } catch (e) {
    throw new RedisUnavailableError(e);
  } finally {
    clearTimeout(timer);
  }
}

/** The producer side of the queues, used by the API and by workers alike. */
@Injectable()
export class QueuesService implements OnModuleDestroy {
  private readonly queues = new Map<QueueName, Queue>();

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly redis: RedisConnections,
  ) {}

  queue(name: QueueName): Queue {
    let q = this.queues.get(name);
    if (!q) {
      // Fail fast while Redis is down (no offline queue): the caller answers 503 at once, and
      // what it wrote to Postgres is picked up by the sweep when Redis returns.
      q = new Queue(name, {
        connection: this.redis.open({ maxRetriesPerRequest: 1, enableOfflineQueue: false }),
        prefix: this.config.queuePrefix,
      });
      // Redis going away is reported by the health probe and by the calls that fail.
      q.on("error", () => undefined);
      this.queues.set(name, q);
    }
    return q;
  }

  /** Asks for a reconcile of one service; duplicates collapse (see reconcileKey). */
  async enqueueReconcile(serviceId: string, reason: string, delayMs = 0): Promise<void> {
    const data: ReconcileJob = { serviceId, reason };
    await this.add(QUEUE.reconcile, "reconcile", data, {
      ...KEEP,
      delay: delayMs,
      deduplication: { id: reconcileKey(serviceId), keepLastIfActive: true },
      attempts: 5,
      backoff: { type: "exponential", delay: 500 },
    });
  }

  /**
   * A delayed reconcile (restart delay, update delay, monitor period). Its own job id rather
   * than the service's deduplication key: a delayed job holding that key would swallow an
   * immediate request (a scale) until the delay ran out.
   */
  async enqueueFollowUp(serviceId: string, atMs: number, reason: string, now: number): Promise<void> {
    const data: ReconcileJob = { serviceId, reason: `follow-up: ${reason}` };
    await this.add(QUEUE.reconcile, "reconcile", data, {
      jobId: `followup-${serviceId}-${atMs}`,
      delay: Math.max(0, atMs - now),
      removeOnComplete: true,
      removeOnFail: { count: 100 },
    });
  }

  /**
   * Asks for one check of the auto-rebalanced services. Held a moment so that the nodes of a
   * burst (a switch coming back) are all ready when it runs; duplicates meanwhile collapse.
   */
  async enqueueAutoRebalance(reason: string): Promise<void> {
    const data: AutoRebalanceJob = { reason };
    await this.add(QUEUE.rebalance, "rebalance-auto", data, {
      ...KEEP,
      delay: AUTO_REBALANCE_GATHER_MS,
      deduplication: { id: AUTO_REBALANCE_KEY, keepLastIfActive: true },
      attempts: 3,
      backoff: { type: "exponential", delay: 1_000 },
    });
  }

  /**
   * Asks for a dispatch on each of these nodes, of the parts that have work there (a node with
   * only tasks to start gets no stop job: at 5,000 nodes that was 5,000 empty jobs, each a read,
   * per reconcile); duplicates collapse (see dispatchKey).
   */
  async enqueueDispatch(nodes: readonly NodeDispatch[], reason: string): Promise<void> {
    if (nodes.length === 0) return;
    const parts = new Map<string, Set<DispatchPart>>();
    for (const n of nodes) {
      const p = parts.get(n.nodeId) ?? new Set<DispatchPart>();
      if (n.start) p.add("start");
      if (n.stop) p.add("stop");
      parts.set(n.nodeId, p);
    }
    const jobs = [...parts].flatMap(([nodeId, ps]) =>
      [...ps].map((part) => ({
        name: "dispatch",
        data: { nodeId, reason, part } satisfies DispatchJob,
        opts: {
          ...KEEP,
          delay: DISPATCH_GATHER_MS,
          deduplication: { id: dispatchKey(nodeId, part), keepLastIfActive: true },
          attempts: 3,
          backoff: { type: "exponential", delay: 1_000 },
        } satisfies JobsOptions,
      })),
    );
    // In slices: one addBulk is one Redis transaction, and thousands of deduplicated adds in one
    // (a reconcile that placed tasks on 5,000 nodes) outlast REDIS_CALL_MS on a busy Redis — the
    // reconcile then failed and retried the same plan forever.
    for (let i = 0; i < jobs.length; i += DISPATCH_ADD_SLICE) {
      const slice = jobs.slice(i, i + DISPATCH_ADD_SLICE);
      await redisCall(() => this.queue(QUEUE.dispatch).addBulk(slice));
    }
  }

  /**
   * Asks for containers to be stopped and removed on a node; the same request collapses while
   * queued. One that failed for good (its agent was away) is retired first, so the next report
   * of the same strays tries again.
   */
  async enqueueRemove(job: RemoveContainersJob): Promise<void> {
    if (job.containers.length === 0) return;
    const digest = createHash("sha256")
      .update([...job.containers].sort().join(","))
      .digest("hex")
      .slice(0, 16);
    const jobId = `remove-${job.nodeId}-${digest}`;
    await redisCall(async () => {
      const previous = await this.queue(QUEUE.dispatch).getJob(jobId);
      if (previous && (await previous.isFailed())) await previous.remove();
    });
    await this.add(QUEUE.dispatch, "remove", job, {
      jobId,
      removeOnComplete: true,
      removeOnFail: { count: 100 },
      attempts: 3,
      backoff: { type: "exponential", delay: 2_000 },
    });
  }

  /** Starts a provisioning operation with progress; a repeat of one already queued collapses. */
  async enqueueProvision(job: ProvisionJob): Promise<string> {
    const jobId = provisionJobId(job.machineId, job.operation);
    // A finished job with the same id would swallow the new one: retire it first.
    await redisCall(async () => {
      const previous = await this.queue(QUEUE.provision).getJob(jobId);
      if (previous && ((await previous.isCompleted()) || (await previous.isFailed()))) await previous.remove();
    });
    await this.add(QUEUE.provision, job.operation, job, { jobId, removeOnComplete: { count: 100 }, removeOnFail: { count: 500 } });
    return jobId;
  }

  /**
   * Notes that a service was just reconciled, for one sweep interval. Best effort: without the
   * note the sweep reconciles the service once more, which is all it would have done anyway.
   */
  async markReconciled(serviceId: string): Promise<void> {
    await redisCall(() =>
      this.redis.client.set(reconciledKey(this.config.queuePrefix, serviceId), "1", "PX", this.config.sweepIntervalMs),
    ).catch(() => undefined);
  }

  /** Of these services, those reconciled within the last sweep interval (see markReconciled). */
  async reconciledRecently(serviceIds: readonly string[]): Promise<Set<string>> {
    if (serviceIds.length === 0) return new Set();
    const marks = await redisCall(() => this.redis.client.mget(serviceIds.map((id) => reconciledKey(this.config.queuePrefix, id))));
    return new Set(serviceIds.filter((_, i) => marks[i] !== null));
  }

  /** The periodic sweep that reconciles everything, so a lost job only delays a change. */
  async ensureSweep(): Promise<void> {
    await this.queue(QUEUE.sweep).upsertJobScheduler(
      "sweep",
      { every: this.config.sweepIntervalMs },
      { name: "sweep", data: {}, opts: KEEP },
    );
  }

  /** Whether the sweep's schedule is in Redis (it is gone after Redis lost its data). */
  async hasSweep(): Promise<boolean> {
    return (await this.queue(QUEUE.sweep).getJobScheduler("sweep")) !== undefined;
  }

  private async add(queue: QueueName, name: string, data: unknown, opts: JobsOptions): Promise<void> {
    await redisCall(() => this.queue(queue).add(name, data, opts));
  }

  async onModuleDestroy(): Promise<void> {
    await Promise.all([...this.queues.values()].map((q) => q.close()));
  }
}
