// When may an API process answer a listing (services, nodes, tasks) from the copy it read
// earlier, instead of reading the database again? Each process keeps, per listing kind, a
// generation that moves whenever an event says that listing may have changed: events of this
// process as it publishes them (so a client sees its own writes at once), every other
// process's as they arrive on the event stream. A copy is served only while
//   - the event stream is known to be delivering (otherwise a change could go unseen: every
//     request reads, as if nothing were kept),
//   - its listing's generation has not moved since its read started, and
//   - its read started less than `maxAgeMs` ago: what changes without an event (a heartbeat's
//     time, a node's reported resources) or an event lost on the way is seen within that bound.
// When the stream comes back after a break, every generation moves: what was missed meanwhile
// is read again rather than trusted.

/** The listings kept per process. */
export type ListingKind = "services" | "nodes" | "tasks";
export const LISTING_KINDS: readonly ListingKind[] = ["services", "nodes", "tasks"];

// Which listings an event kind can change. Tasks: a service's running/live counts, a node's
// task count, the task listing. Services: their listing, and the task listing's service names
// (a removed service takes its tasks along). Nodes: their listing and the task listing's
// hostnames. Networks: services' virtual IPs.
const CHANGES: Readonly<Record<string, readonly ListingKind[]>> = {
  task: ["services", "nodes", "tasks"],
  service: ["services", "tasks"],
  node: ["nodes", "tasks"],
  network: ["services"],
  // Kinds no listing shows: machines (their nodes have events of their own), tokens, secret and
  // config values, audit records.
  machine: [],
  token: [],
  secret: [],
  config: [],
  audit: [],
};

/** The listings an event of this kind may change; every listing for a kind not known here. */
export function listingsChangedBy(eventKind: string): readonly ListingKind[] {
  return Object.hasOwn(CHANGES, eventKind) ? CHANGES[eventKind]! : LISTING_KINDS;
}

export type ListingGenerations = Readonly<Record<ListingKind, number>>;

/** One process's view of how fresh its copies can be. */
export interface ListingFreshness {
  readonly generations: ListingGenerations;
  /** Whether the event stream is subscribed and delivering. */
  readonly live: boolean;
}

export const INITIAL_LISTING_FRESHNESS: ListingFreshness = { generations: { services: 0, nodes: 0, tasks: 0 }, live: false };

function bump(g: ListingGenerations, kinds: Iterable<ListingKind>): ListingGenerations {
  const next = { ...g };
  for (const k of kinds) next[k] = g[k] + 1;
  return next;
}

/** After events of these kinds were published or received. */
export function afterEvents(f: ListingFreshness, eventKinds: Iterable<string>): ListingFreshness {
  const kinds = new Set<ListingKind>();
  for (const e of eventKinds) for (const k of listingsChangedBy(e)) kinds.add(k);
  return kinds.size ? { ...f, generations: bump(f.generations, kinds) } : f;
}

/**
 * The stream stopped (the subscriber's connection dropped) or started delivering again (its
 * subscription confirmed): either way nothing read before can be trusted.
 */
export function afterStream(f: ListingFreshness, live: boolean): ListingFreshness {
  return { live, generations: bump(f.generations, LISTING_KINDS) };
}

/** A copy of a listing, with what was true when its read started. */
export interface ListingCopy {
  readonly kind: ListingKind;
  readonly generation: number;
  /** Epoch ms when the read started: the copy holds what was committed before then, at least. */
  readonly readAt: number;
}

/** Whether a copy may answer a request arriving at `now`. */
export function copyServable(copy: ListingCopy, f: ListingFreshness, now: number, maxAgeMs: number): boolean {
  return f.live && f.generations[copy.kind] === copy.generation && now - copy.readAt < maxAgeMs && now >= copy.readAt;
}
