import type { EventInput, FlotillaEvent } from "../events/events.service";
import type { Prisma } from "../generated/prisma/client";

/**
 * Writes many events in one statement inside `tx` (a scale to thousands of tasks must not be
 * thousands of inserts); publish the result after the commit, as with EventsService.record.
 */
export async function recordEvents(tx: Prisma.TransactionClient, inputs: EventInput[]): Promise<FlotillaEvent[]> {
  const rows = await tx.event.createManyAndReturn({
    data: inputs.map((e) => ({ kind: e.kind, subjectId: e.subjectId ?? null, action: e.action, data: (e.data ?? {}) as Prisma.InputJsonValue })),
  });
  return rows.map((r) => ({ id: r.id.toString(), at: r.at.toISOString(), kind: r.kind, subjectId: r.subjectId, action: r.action, data: r.data as Record<string, unknown> }));
}

/**
 * Publishes events without waiting for each one's round trip: the commands are issued in order
 * on one connection (ioredis pipelines them), so order is kept and a batch of thousands takes
 * one round trip's worth of waiting rather than thousands.
 */
export async function publishAll(events: { publish(e: FlotillaEvent[]): Promise<void> }, list: FlotillaEvent[]): Promise<void> {
  await Promise.all(list.map((e) => events.publish([e])));
}
