import { Inject, Injectable, Logger, OnApplicationBootstrap, OnModuleDestroy } from "@nestjs/common";
import { Worker, type Job } from "bullmq";
import { APP_CONFIG, type AppConfig } from "../config/config";
import { PrismaService } from "../database/prisma.service";
import { RedisConnections } from "../database/redis";
import { JobHandlers } from "./job-handlers";
import { QUEUE, type QueueName } from "./queue-names";
import { QueuesService } from "./queues.service";

const CONCURRENCY: Record<QueueName, number> = { reconcile: 8, provision: 4, sweep: 1 };

/** The consumer side: runs only in the `worker` and `all` roles. */
@Injectable()
export class WorkersService implements OnApplicationBootstrap, OnModuleDestroy {
  private readonly logger = new Logger("workers");
  private readonly workers: Worker[] = [];

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly redis: RedisConnections,
    private readonly queues: QueuesService,
    private readonly handlers: JobHandlers,
    private readonly prisma: PrismaService,
  ) {}

  async onApplicationBootstrap(): Promise<void> {
    for (const name of Object.values(QUEUE)) {
      const worker = new Worker(name, (job) => this.run(name, job), {
        connection: this.redis.open(),
        prefix: this.config.queuePrefix,
        concurrency: CONCURRENCY[name],
      });
      worker.on("failed", (job, err) => this.logger.warn(`${name} job ${job?.id ?? "?"} failed: ${err.message}`));
      worker.on("error", (err) => this.logger.error(`${name} worker: ${err.message}`));
      this.workers.push(worker);
    }
    await this.queues.ensureSweep();
    this.logger.log(`workers started for queues: ${Object.values(QUEUE).join(", ")}`);
  }

  private async run(name: QueueName, job: Job): Promise<unknown> {
    if (name === QUEUE.sweep) return this.sweep();
    const handler = this.handlers.get(name);
    if (!handler) throw new Error(`no handler registered for queue "${name}" in this build`);
    return handler(job);
  }

  /** Enqueues a reconcile for every service; duplicates of queued ones collapse. */
  private async sweep(): Promise<{ services: number }> {
    const services = await this.prisma.service.findMany({ select: { id: true } });
    for (const s of services) await this.queues.enqueueReconcile(s.id, "sweep");
    return { services: services.length };
  }

  /** Lets running jobs finish (BullMQ's close waits for them) before connections go away. */
  async onModuleDestroy(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.close()));
  }
}
