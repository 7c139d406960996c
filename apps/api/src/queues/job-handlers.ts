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

  /**
   * Swaps the handler of a queue, returning the one it replaces: for tests of the queue
   * machinery itself, and for embedding a control plane with a different behaviour.
   */
  replace(queue: QueueName, handler: JobHandler): JobHandler | undefined {
    const previous = this.handlers.get(queue);
    this.handlers.set(queue, handler);
    return previous;
  }

  get(queue: QueueName): JobHandler | undefined {
    return this.handlers.get(queue);
  }
}
