/**
 * Container, image and volume events in Docker's shape, kept in a bounded in-memory ring so
 * `GET /events?since=` can replay recent history, and pushed to live subscribers.
 */
import { labelMatches } from "../labels";

export type EventType = "container" | "image" | "volume" | "network";

/** One event as GET /events streams it (with the pre-1.22 status/id/from fields for old clients). */
export interface DockerEvent {
  Type: EventType;
  Action: string;
  Actor: { ID: string; Attributes: Record<string, string> };
  scope: "local";
  /** Unix seconds. */
  time: number;
  timeNano: number;
  status?: string;
  id?: string;
  from?: string;
}

export type EventListener = (event: DockerEvent) => void;

/** Event filters of GET /events: type, event (action), container, image, volume, label. */
export type EventFilters = Map<string, string[]>;

export const EVENT_FILTER_KEYS = ["type", "event", "container", "image", "volume", "network", "label", "scope"] as const;

export class EventBus {
  private readonly ring: DockerEvent[] = [];
  private readonly listeners = new Set<EventListener>();
  private lastNano = 0;

  constructor(private readonly capacity = 1024) {}

  /** Records and broadcasts an event. Attributes carry name, image, labels, exitCode… */
  emit(type: EventType, action: string, id: string, attributes: Record<string, string> = {}): DockerEvent {
    // Strictly increasing timestamps keep since/until replays free of ties. A microsecond step:
    // nanoseconds since 1970 exceed a double's integer precision (steps of 256 ns).
    const nano = Math.max(Date.now() * 1e6, this.lastNano + 1000);
    this.lastNano = nano;
    const event: DockerEvent = {
      Type: type,
      Action: action,
      Actor: { ID: id, Attributes: attributes },
      scope: "local",
      time: Math.floor(nano / 1e9),
      timeNano: nano,
    };
    if (type === "container") {
      event.status = action;
      event.id = id;
      if (attributes.image) event.from = attributes.image;
    }
    this.ring.push(event);
    if (this.ring.length > this.capacity) this.ring.shift();
    for (const l of this.listeners) l(event);
    return event;
  }

  /** Recorded events with timeNano in [sinceNano, untilNano]. */
  history(sinceNano: number, untilNano = Infinity): DockerEvent[] {
    return this.ring.filter((e) => e.timeNano >= sinceNano && e.timeNano <= untilNano);
  }

  subscribe(listener: EventListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}

/** Docker's event filter semantics: values of one key are OR-ed, keys are AND-ed. */
export function eventMatches(e: DockerEvent, filters: EventFilters): boolean {
  const attrs = e.Actor.Attributes;
  for (const [key, values] of filters) {
    if (!values.length) continue;
    const any = (pred: (v: string) => boolean) => values.some(pred);
    switch (key) {
      case "type":
        if (!any((v) => v === e.Type)) return false;
        break;
      case "event":
        // "exec_start" filters match "exec_start: sh"; plain actions match exactly.
        if (!any((v) => e.Action === v || e.Action.startsWith(`${v}:`))) return false;
        break;
      case "container":
        if (e.Type !== "container" || !any((v) => e.Actor.ID.startsWith(v) || attrs.name === v)) return false;
        break;
      case "image":
        if (!any((v) => attrs.image === v || (e.Type === "image" && (e.Actor.ID === v || attrs.name === v)))) return false;
        break;
      case "volume":
        if (e.Type !== "volume" || !any((v) => e.Actor.ID === v)) return false;
        break;
      case "network":
        if (e.Type !== "network" || !any((v) => e.Actor.ID === v || attrs.name === v)) return false;
        break;
      case "label":
        if (!any((v) => labelMatches(attrs, v))) return false;
        break;
      case "scope":
        if (!any((v) => v === "local")) return false;
        break;
    }
  }
  return true;
}

/**
 * Docker's time values for since/until: unix seconds with an optional fraction
 * (`1700000000.123456789`), an RFC 3339 date, or a duration back from now (`10m`, `1h30m`).
 */
export function parseEventTime(value: string, now = Date.now()): number {
  const v = value.trim();
  const secs = /^(\d+)(?:\.(\d{1,9}))?$/.exec(v);
  if (secs) return Number(secs[1]) * 1e9 + Number((secs[2] ?? "").padEnd(9, "0"));
  const dur = /^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$/.exec(v);
  if (dur && v) return (now - ((Number(dur[1] ?? 0) * 60 + Number(dur[2] ?? 0)) * 60 + Number(dur[3] ?? 0)) * 1000) * 1e6;
  const ms = Date.parse(v);
  if (Number.isFinite(ms)) return ms * 1e6;
  return NaN;
}
