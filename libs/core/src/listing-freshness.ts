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
//
// Other processes' task events are counted apart (`remote`): a copy they retire still answers,
// within its age, while one read started after them replaces it. While a cluster converges the
// worker's task events arrive every few milliseconds, and retiring copies outright made every
// listing request its own read of every task (at 150,000 tasks, seconds per request at p99); now
// the reads are one at a time, and a copy such events made stale is replaced once it has been
// kept for REMOTE_REFRESH_MS (or a quarter of the max age, if less): back-to-back reads of every
// task's counts had kept one Postgres backend busy over half the time of a 5,000-node run. A
// task's change shows once a read that started after its event ends, within REMOTE_REFRESH_MS
// and a read of it arriving. This process's own events, and other kinds of event from anywhere
// (a write through another replica), still retire copies outright.

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
  /** Moved by this process's events and by breaks of the stream: a copy from before never serves. */
  readonly generations: ListingGenerations;
  /** Moved by other processes' events: a copy from before serves while a newer read is made. */
  readonly remote: ListingGenerations;
  /** Whether the event stream is subscribed and delivering. */
  readonly live: boolean;
}

const ZERO: ListingGenerations = { services: 0, nodes: 0, tasks: 0 };
export const INITIAL_LISTING_FRESHNESS: ListingFreshness = { generations: ZERO, remote: ZERO, live: false };

function bump(g: ListingGenerations, kinds: Iterable<ListingKind>): ListingGenerations {
  const next = { ...g };
  for (const k of kinds) next[k] = g[k] + 1;
  return next;
}

function kindsChangedBy(eventKinds: Iterable<string>): Set<ListingKind> {
  const kinds = new Set<ListingKind>();
  for (const e of eventKinds) for (const k of listingsChangedBy(e)) kinds.add(k);
  return kinds;
}

/** After this process published events of these kinds. */
export function afterEvents(f: ListingFreshness, eventKinds: Iterable<string>): ListingFreshness {
  const kinds = kindsChangedBy(eventKinds);
  return kinds.size ? { ...f, generations: bump(f.generations, kinds) } : f;
}

// Task events are the stream's flood (every state of every task, the worker's progress rather
// than a client's write): from the stream they make copies stale. Every other kind (a service,
// node or network written through another replica) retires copies as it arrives, so a write
// made through one replica shows on the next read through another.
const STALE_ONLY: ReadonlySet<string> = new Set(["task"]);

/** After events of these kinds arrived from the stream (another process's, or this one's again). */
export function afterRemoteEvents(f: ListingFreshness, eventKinds: Iterable<string>): ListingFreshness {
  const all = [...eventKinds];
  const next = afterEvents(
    f,
    all.filter((e) => !STALE_ONLY.has(e)),
  );
  const kinds = kindsChangedBy(all.filter((e) => STALE_ONLY.has(e)));
  return kinds.size ? { ...next, remote: bump(next.remote, kinds) } : next;
}

/**
 * The stream stopped (the subscriber's connection dropped) or started delivering again (its
 * subscription confirmed): either way nothing read before can be trusted.
 */
export function afterStream(f: ListingFreshness, live: boolean): ListingFreshness {
  return { ...f, live, generations: bump(f.generations, LISTING_KINDS) };
}

/** A copy of a listing, with what was true when its read started. */
export interface ListingCopy {
  readonly kind: ListingKind;
  readonly generation: number;
  /** The listing's remote generation when the read started (absent: treated as current). */
  readonly remote?: number;
  /** Epoch ms when the read started: the copy holds what was committed before then, at least. */
  readonly readAt: number;
  /** When the read ended and the copy was kept (absent: when it started). */
  readonly keptAt?: number;
}

/** Whether a copy may answer a request arriving at `now`. */
export function copyServable(copy: ListingCopy, f: ListingFreshness, now: number, maxAgeMs: number): boolean {
  return f.live && f.generations[copy.kind] === copy.generation && now - copy.readAt < maxAgeMs && now >= copy.readAt;
}

/** How long a copy other processes' task events made stale still answers before a read replaces it. */
export const REMOTE_REFRESH_MS = 250;

/**
 * What a request does with a copy: answer with it; answer with it and have a newer read made
 * (other processes' events came after it and it was kept REMOTE_REFRESH_MS ago, or it is
 * past half its age: the copy stays servable until that read replaces it, so a steady stream of
 * requests rarely finds it expired); or wait for a read that starts after the request.
 */
export type CopyUse = "serve" | "serve-and-refresh" | "read";

export function copyUse(copy: ListingCopy, f: ListingFreshness, now: number, maxAgeMs: number): CopyUse {
  if (!copyServable(copy, f, now, maxAgeMs)) return "read";
  const remoteChange = copy.remote !== undefined && copy.remote !== f.remote[copy.kind];
  const keptFor = now - (copy.keptAt ?? copy.readAt);
  const refreshAfter = Math.min(REMOTE_REFRESH_MS, maxAgeMs / 4);
  return (remoteChange && keptFor >= refreshAfter) || now - copy.readAt >= maxAgeMs / 2 ? "serve-and-refresh" : "serve";
}
