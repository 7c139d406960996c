import { utc, type SqlRunner } from "../database/sql";
import type { EventInput, FlotillaEvent } from "./events.service";

/** The RETURNING list of an Event insert, as `eventsFrom` reads it. */
export const EVENT_RETURNING = `RETURNING id::text AS id, at, kind, "subjectId", action, data`;

export interface EventRow {
  id: string;
  at: Date;
  kind: string;
  subjectId: string | null;
  action: string;
  data: Record<string, unknown> | null;
}

/** Rows of an Event insert (EVENT_RETURNING) as events, in id order. */
export function eventsFrom(rows: readonly EventRow[]): FlotillaEvent[] {
  // Ids are handed out in insertion order; RETURNING's order is not promised.
  return [...rows]
    .sort((a, b) => a.id.length - b.id.length || (a.id < b.id ? -1 : 1))
    .map((r) => ({ id: r.id, at: r.at.toISOString(), kind: r.kind, subjectId: r.subjectId, action: r.action, data: r.data ?? {} }));
}

/**
 * Writes events in one statement inside a plain-SQL transaction (the hot paths' counterpart of
 * EventsService.record): publish the result after the commit.
 */
export async function insertEvents(tx: SqlRunner, inputs: readonly EventInput[], at: Date | number): Promise<FlotillaEvent[]> {
  if (inputs.length === 0) return [];
  const rows = await tx.query<EventRow>(
    `INSERT INTO "Event" (at, kind, "subjectId", action, data)
     SELECT $1::timestamp(3), v.kind, v.subject, v.action, v.data
     FROM unnest($2::text[], $3::text[], $4::text[], $5::jsonb[]) WITH ORDINALITY AS v(kind, subject, action, data, n)
     ORDER BY v.n
     ${EVENT_RETURNING}`,
    [
      utc(at),
      inputs.map((e) => e.kind),
      inputs.map((e) => e.subjectId ?? null),
      inputs.map((e) => e.action),
      inputs.map((e) => JSON.stringify(e.data ?? {})),
    ],
  );
  return eventsFrom(rows);
}
