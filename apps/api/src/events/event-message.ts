/** One row of the event log, as published on the events channel and streamed to clients. */
export interface FlotillaEvent {
  id: string;
  at: string;
  kind: string;
  subjectId: string | null;
  action: string;
  data: Record<string, unknown>;
}

/**
 * Reads one message from the events channel: an event or an array of events as `publish()`
 * writes them. Anything else (a stray or hostile publish by whoever reaches Redis) is refused
 * with a reason rather than thrown, so one bad message cannot take the subscriber down.
 */
export function decodeEventMessage(message: string): { events: FlotillaEvent[] } | { error: string } {
  let parsed: unknown;
  try {
    parsed = JSON.parse(message);
  } catch {
    return { error: "not JSON" };
  }
  const items = Array.isArray(parsed) ? parsed : [parsed];
  const events: FlotillaEvent[] = [];
  for (const item of items) {
    if (!isEvent(item)) return { error: "not an event" };
    events.push(item);
  }
  return { events };
}

function isEvent(v: unknown): v is FlotillaEvent {
  if (typeof v !== "object" || v === null || Array.isArray(v)) return false;
  const e = v as Record<string, unknown>;
  return (
    typeof e.id === "string" &&
    typeof e.at === "string" &&
    typeof e.kind === "string" &&
    typeof e.action === "string" &&
    (e.subjectId === null || typeof e.subjectId === "string") &&
    typeof e.data === "object" &&
    e.data !== null &&
    !Array.isArray(e.data)
  );
}
