import { Inject, Injectable, OnModuleDestroy } from "@nestjs/common";
import { Queue, type JobsOptions } from "bullmq";
import { APP_CONFIG, type AppConfig } from "../config/config";
import { RedisConnections } from "../database/redis";
import { QUEUE, provisionJobId, reconcileKey, type ProvisionJob, type QueueName, type ReconcileJob } from "./queue-names";

const KEEP = { removeOnComplete: { count: 1000 }, removeOnFail: { count: 5000 } } satisfies JobsOptions;

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
      q = new Queue(name, { connection: this.redis.open({ maxRetriesPerRequest: 1 }), prefix: this.config.queuePrefix });
      this.queues.set(name, q);
    }
    return q;
  }

  /** Asks for a reconcile of one service; duplicates collapse (see reconcileKey). */
  async enqueueReconcile(serviceId: string, reason: string, delayMs = 0): Promise<void> {
    const data: ReconcileJob = { serviceId, reason };
    await this.queue(QUEUE.reconcile).add("reconcile", data, {
      ...KEEP,
      delay: delayMs,
      deduplication: { id: reconcileKey(serviceId), keepLastIfActive: true },
      attempts: 5,
      backoff: { type: "exponential", delay: 500 },
    });
  }

  /** Starts a provisioning operation with progress; a repeat of one already queued collapses. */
  async enqueueProvision(job: ProvisionJob): Promise<string> {
    const jobId = provisionJobId(job.machineId, job.operation);
    // A finished job with the same id would swallow the new one: retire it first.
    const previous = await this.queue(QUEUE.provision).getJob(jobId);
    if (previous && ((await previous.isCompleted()) || (await previous.isFailed()))) await previous.remove();
    await this.queue(QUEUE.provision).add(job.operation, job, { jobId, removeOnComplete: { count: 100 }, removeOnFail: { count: 500 } });
    return jobId;
  }

  /** The periodic sweep that reconciles everything, so a lost job only delays a change. */
  async ensureSweep(): Promise<void> {
    await this.queue(QUEUE.sweep).upsertJobScheduler("sweep", { every: this.config.sweepIntervalMs }, { name: "sweep", data: {}, opts: KEEP });
  }

  async onModuleDestroy(): Promise<void> {
    await Promise.all([...this.queues.values()].map((q) => q.close()));
  }
}
