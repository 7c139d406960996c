// Heartbeats and registrations ask for reconciles as a follow-up of what they recorded, never as
// part of it: the record needs only Postgres, and the periodic sweep enqueues every reconcile the
// database calls for, so a reconcile that cannot be enqueued now (Redis down) is only delayed.
import type { Logger } from "@nestjs/common";
import type { QueuesService } from "../queues/queues.service";

/**
 * Enqueues a reconcile of each service (once each), or logs and leaves them to the sweep when
 * that fails. `serviceIds` may be a pending lookup: its failure is left to the sweep as well.
 */
export async function reconcileLater(
  queues: QueuesService,
  logger: Logger,
  serviceIds: Iterable<string> | Promise<Iterable<string>>,
  reason: string,
): Promise<void> {
  try {
    for (const id of new Set(await serviceIds)) await queues.enqueueReconcile(id, reason);
  } catch (e) {
    logger.warn(`reconcile (${reason}) left to the sweep: ${(e as Error).message}`);
  }
}
