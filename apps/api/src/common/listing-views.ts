// The listings ctl, the console and dashboards poll (services, nodes, tasks), kept per API
// process as the JSON bytes and ETag of their last read, so a request that finds a servable
// copy costs a map lookup and a socket write. Whether a copy is servable is core's decision
// (listing-freshness.ts): its listing's generation unchanged since its read started (this
// process's events move generations as it publishes them), the event stream delivering, and the
// read younger than FLOTILLA_LISTING_MAX_AGE_MS. Other processes' task events, from the Redis
// channel, only make a copy stale (their other events retire it): it still answers while one
// read, started after them, replaces it, once the copy has been kept 250 ms (core's
// REMOTE_REFRESH_MS: reads back to back while a cluster converges were a busy Postgres
// backend); so does a copy past half its age, so that one polled steadily is replaced before it
// expires.
// Bounds, for a change committed before a request is sent:
//   - made through this process: shown (its event retired the copy before the write answered);
//   - made elsewhere, with an event: shown once the event arrives (pub/sub: milliseconds); a
//     task's state, once a read started after its event arrived has ended (within 250 ms of
//     the copy being kept, and the read's time);
//   - without an event, or with an event this process missed: within the max age. A break in
//     the subscription retires every copy, and nothing is kept until it is confirmed again.
// Without a servable copy, concurrent requests share one read (SharedReads) that started after
// each of them arrived.
import { Inject, Injectable, OnModuleDestroy } from "@nestjs/common";
import type { Subscription } from "rxjs";
import {
  afterEvents,
  afterRemoteEvents,
  afterStream,
  copyServable,
  copyUse,
  INITIAL_LISTING_FRESHNESS,
  LISTING_KINDS,
  type ListingCopy,
  type ListingFreshness,
  type ListingKind,
} from "@flotilla/core";
import { APP_CONFIG, type AppConfig } from "../config/config";
import { EventsService } from "../events/events.service";
import type { Listing } from "./listing";
import { SharedReads } from "./shared-reads";

interface Held {
  listing: Listing;
  copy: ListingCopy;
}

// A copy's age is elapsed process time, not the control plane's clock (CLOCK): it bounds a
// cache, decides nothing, and must not freeze under a test's held clock or jump with the wall.
const elapsedMs = () => performance.now();

@Injectable()
export class ListingViews implements OnModuleDestroy {
  private freshness: ListingFreshness = INITIAL_LISTING_FRESHNESS;
  /** Per kind, copies by key; emptied whenever the kind's generation moves (none would serve). */
  private readonly held = new Map<ListingKind, Map<string, Held>>(LISTING_KINDS.map((k) => [k, new Map()]));
  private readonly reads = new SharedReads<Listing>();
  private subscriptions: Subscription[] | undefined;
  private readonly maxAgeMs: number;

  constructor(
    private readonly events: EventsService,
    @Inject(APP_CONFIG) config: AppConfig,
  ) {
    this.maxAgeMs = config.listingMaxAgeMs;
  }

  /**
   * The listing of `kind` under `key` (its filters): this process's copy when it may serve,
   * else `load()`'s result from a read that started after this call.
   */
  read(kind: ListingKind, key: string, load: () => Promise<Listing>): Listing | Promise<Listing> {
    // Subscribed on first use: worker-only processes serve no listings and need no subscriber.
    if (!this.subscriptions) this.subscribe();
    const held = this.held.get(kind)!.get(key);
    const use = held ? copyUse(held.copy, this.freshness, elapsedMs(), this.maxAgeMs) : "read";
    if (use === "serve") return held!.listing;
    const fresh = this.reads.read(`${kind}\0${key}`, async () => {
      const copy: ListingCopy = {
        kind,
        generation: this.freshness.generations[kind],
        remote: this.freshness.remote[kind],
        readAt: elapsedMs(),
      };
      const listing = await load();
      // Kept only if nothing retired it while it was read (else the next request reads again).
      const keptAt = elapsedMs();
      if (copyServable(copy, this.freshness, keptAt, this.maxAgeMs)) this.held.get(kind)!.set(key, { listing, copy: { ...copy, keptAt } });
      return listing;
    });
    if (use === "read") return fresh;
    // The stale copy answers; the read replaces it (a failed one leaves it to its age).
    fresh.catch(() => undefined);
    return held!.listing;
  }

  /** How many copies are held (for tests). */
  get size(): number {
    return [...this.held.values()].reduce((n, m) => n + m.size, 0);
  }

  onModuleDestroy(): void {
    for (const s of this.subscriptions ?? []) s.unsubscribe();
  }

  private subscribe(): void {
    this.subscriptions = [
      this.events.published().subscribe((evs) =>
        this.move(
          afterEvents(
            this.freshness,
            evs.map((e) => e.kind),
          ),
        ),
      ),
      this.events.stream().subscribe((e) => this.move(afterRemoteEvents(this.freshness, [e.kind]))),
      this.events.streamLive().subscribe((live) => {
        if (live !== this.freshness.live) this.move(afterStream(this.freshness, live));
      }),
    ];
  }

  private move(next: ListingFreshness): void {
    for (const kind of LISTING_KINDS) if (next.generations[kind] !== this.freshness.generations[kind]) this.held.get(kind)!.clear();
    this.freshness = next;
  }
}
