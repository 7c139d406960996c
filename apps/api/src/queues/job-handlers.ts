import { Injectable } from "@nestjs/common";
import type { Job } from "bullmq";
import type { QueueName } from "./queue-names";

export type JobHandler = (job: Job) => Promise<unknown>;

/**
 * Feature modules register what their queue's jobs do (services: reconcile; machines:
 * provision); the worker process only routes. Keeps BullMQ out of the features' logic.
 */
@Injectable()
export class JobHandlers {
  private readonly handlers = new Map<QueueName, JobHandler>();

  register(queue: QueueName, handler: JobHandler): void {
    if (this.handlers.has(queue)) throw new Error(`a handler for queue "${queue}" is already registered`);
    this.handlers.set(queue, handler);
  }

  get(queue: QueueName): JobHandler | undefined {
    return this.handlers.get(queue);
  }
}
