import { Injectable, OnModuleInit } from "@nestjs/common";
import type { Job } from "bullmq";
import { JobHandlers } from "../queues/job-handlers";
import { QUEUE, type AutoRebalanceJob } from "../queues/queue-names";
import { ServicesService } from "./services.service";

/**
 * The worker side of `rebalancePolicy: auto`: a node's return only queues a check (heartbeats
 * stay cheap however many nodes come back at once), and the check runs here, once per burst.
 */
@Injectable()
export class AutoRebalanceService implements OnModuleInit {
  constructor(
    private readonly services: ServicesService,
    private readonly handlers: JobHandlers,
  ) {}

  onModuleInit(): void {
    this.handlers.register(QUEUE.rebalance, async (job: Job) => ({
      started: await this.services.rebalanceAuto((job.data as AutoRebalanceJob).reason),
    }));
  }
}
