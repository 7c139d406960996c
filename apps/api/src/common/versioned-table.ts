// The tables agents long-poll for (the ingress mesh's, each node's overlay networks') share one
// shape: content with a version that changes whenever the content does, a short cache for the
// heartbeat replies that carry it as a fallback, and polls that wait until the version differs
// from the agent's. What changes the content is noticed from the event stream (subscribed on first
// use); without it a waiting poll still reads again every `recheckMs`. This is the
// waiting and caching alone, with no Nest and no I/O of its own, so it is tested by itself.
import { createHash } from "node:crypto";
import type { TableEvent, TableEventScope } from "@flotilla/core";

/** A digest of the content: equal contents have equal versions. */
export function contentVersion(content: unknown): string {
  return createHash("sha256").update(JSON.stringify(content)).digest("hex").slice(0, 16);
}

export interface Unsubscribable {
  unsubscribe(): void;
}

export interface VersionedTableOptions {
  /** The clock the polls' deadlines are measured on (epoch ms). */
  now(): number;
  /** How long one cached read serves the callers of `cached`. */
  cacheMs: number;
  /**
   * How long it serves while the event stream is live (default cacheMs): then every change that
   * matters drops it, and the age limit only bounds what a lost event could cost.
   */
  liveCacheMs?: number;
  /** How long a poll waits without a change before reading again, while the events may be missed. */
  recheckMs: number;
  /** Longest wait a poll may ask for. */
  maxWaitMs: number;
  /** The events that may change the content (the event stream); subscribed once, on first use. */
  events(): { subscribe(next: (event: TableEvent) => void): Unsubscribable };
  /** The event kinds that change the content; other events are ignored. */
  kinds: ReadonlySet<string>;
  /**
   * Of those, whose content each may change (default: everyone's). "none" drops no cache and
   * wakes no poll; a list of nodes wakes only the polls waiting for those keys (and unkeyed ones).
   */
  scope?(event: TableEvent): TableEventScope;
  /**
   * Whether the event stream is delivering (EventsService.streamLive). While it is, polls wait
   * for a change or their deadline without reading again every recheckMs (at 5,000 agents, two
   * polls each, that was 10,000 reads a second of a table that had not changed), and when it
   * comes back after a break every poll reads again, for what the break lost. Without it: never.
   */
  streamLive?(): { subscribe(next: (live: boolean) => void): Unsubscribable };
  /**
   * A change is acted on at once, and the further ones within this long once, at its end
   * (default 0: each at once). Every change wakes every waiting poll to read and compare:
   * with 5,000 agents polling while 5,000 nodes registered, a node event each, that was 5,000
   * polls woken 5,000 times.
   */
  coalesceMs?: number;
  /**
   * A poll's wait ends up to this share of it early, at random (default 0): polls that started
   * together (a fleet booting) would otherwise come back together every waitMs, thousands at once.
   */
  earlyShare?: number;
  /** In [0, 1); default Math.random. */
  random?: () => number;
}

export class VersionedTable<C> {
  /** The shared read, and the keys whose content changed since it began (see `changed`). */
  private cache: { at: number; value: Promise<C>; changed: Set<string> } | undefined;
  /** Polls waiting for any change, and those waiting for their key's. */
  private readonly waiters = new Set<() => void>();
  private readonly keyed = new Map<string, Set<() => void>>();
  private watching: Unsubscribable | undefined;
  private watchingLive: Unsubscribable | undefined;
  private live = false;
  private closed = false;
  /** While set, changes are held (`held`: everyone's, or these keys') until it fires: see coalesceMs. */
  private coalescing: NodeJS.Timeout | undefined;
  private held: "all" | Set<string> | undefined;

  constructor(private readonly options: VersionedTableOptions) {}

  /** Starts watching for changes, once: on first use, so worker-only processes need no subscriber. */
  watch(): void {
    this.watching ??= this.options.events().subscribe((e) => {
      if (!this.options.kinds.has(e.kind)) return;
      this.changedIn(this.options.scope?.(e) ?? "all");
    });
    this.watchingLive ??= this.options.streamLive?.().subscribe((live) => {
      const back = live && !this.live;
      this.live = live;
      if (back) this.changed();
    });
  }

  /**
   * The content changed (for these keys only, if given) and the waiting polls concerned read
   * again (see coalesceMs). The cache is dropped, or for keys only, kept with those keys marked
   * (`cachedWithChanges`): one node's change (5,000 of them while a fleet registers) no longer
   * makes every beat and poll of every other node read all the rows again.
   */
  changed(keys?: readonly string[]): void {
    if (this.coalescing) {
      if (!keys || this.held === "all") this.held = "all";
      else {
        const held = this.held ?? new Set<string>();
        for (const k of keys) held.add(k);
        this.held = held;
      }
      return;
    }
    if (keys) for (const k of keys) this.cache?.changed.add(k);
    else this.cache = undefined;
    if (keys) for (const k of keys) for (const wake of [...(this.keyed.get(k) ?? [])]) wake();
    else for (const set of this.keyed.values()) for (const wake of [...set]) wake();
    for (const wake of [...this.waiters]) wake();
    const ms = this.options.coalesceMs ?? 0;
    if (ms > 0 && !this.closed)
      this.coalescing = setTimeout(() => {
        this.coalescing = undefined;
        const held = this.held;
        this.held = undefined;
        if (held) this.changed(held === "all" ? undefined : [...held]);
      }, ms);
  }

  /** What an event's scope says changed: nothing, everyone's content, or these keys' only. */
  changedIn(scope: TableEventScope): void {
    if (scope !== "none") this.changed(scope === "all" ? undefined : scope.nodes);
  }

  /** Stops watching and answers every waiting poll (with "unchanged"), so shutdown does not wait for them. */
  close(): void {
    this.closed = true;
    clearTimeout(this.coalescing);
    this.watching?.unsubscribe();
    this.watchingLive?.unsubscribe();
    for (const set of this.keyed.values()) for (const wake of [...set]) wake();
    for (const wake of [...this.waiters]) wake();
  }

  /** `read()`'s result, shared by every caller within `cacheMs` of the read (and until a change). */
  cached(read: () => Promise<C>): Promise<C> {
    return this.cachedWithChanges(read).value;
  }

  /**
   * As `cached`, with the keys whose content changed since that read began (a live set: keys
   * changed later join it). Their part of the value may be old; everyone else's holds.
   */
  cachedWithChanges(read: () => Promise<C>): { value: Promise<C>; changed: ReadonlySet<string> } {
    const now = this.options.now();
    const maxAge = this.live ? (this.options.liveCacheMs ?? this.options.cacheMs) : this.options.cacheMs;
    if (!this.cache || now - this.cache.at >= maxAge) {
      const value = read();
      this.cache = { at: now, value, changed: new Set() };
      // A failed read must not be served to the next callers.
      value.catch(() => {
        if (this.cache?.value === value) this.cache = undefined;
      });
    }
    return this.cache;
  }

  /**
   * `current()` once its version differs from `version`, or undefined when it has not changed
   * within `waitMs` (at most `maxWaitMs`) or the table is closing.
   */
  async waitFor<T extends { version: string }>(
    current: () => Promise<T>,
    version: string | undefined,
    waitMs: number,
    key?: string,
  ): Promise<T | undefined> {
    this.watch();
    const wait = Math.min(waitMs, this.options.maxWaitMs);
    const early = (this.options.earlyShare ?? 0) * (this.options.random ?? Math.random)();
    const deadline = this.options.now() + Math.round(wait * (1 - early));
    for (;;) {
      // Woken by a change that arrived during the read: read again rather than wait.
      let changed = false;
      const mark = () => {
        changed = true;
      };
      this.addWaiter(mark, key);
      const table = await current().finally(() => this.removeWaiter(mark, key));
      if (table.version !== version) return table;
      const left = deadline - this.options.now();
      if (left <= 0 || this.closed) return undefined;
      if (changed) continue;
      await this.nextChange(this.live ? left : Math.min(left, this.options.recheckMs), key);
    }
  }

  /** Resolves at the next change (of `key`'s content, if given), at `close`, or after `ms`, whichever comes first. */
  private nextChange(ms: number, key: string | undefined): Promise<void> {
    return new Promise<void>((resolve) => {
      const wake = () => {
        clearTimeout(timer);
        this.removeWaiter(wake, key);
        resolve();
      };
      const timer = setTimeout(wake, ms);
      this.addWaiter(wake, key);
    });
  }

  private addWaiter(wake: () => void, key: string | undefined): void {
    if (key === undefined) this.waiters.add(wake);
    else {
      let set = this.keyed.get(key);
      if (!set) this.keyed.set(key, (set = new Set()));
      set.add(wake);
    }
  }

  private removeWaiter(wake: () => void, key: string | undefined): void {
    if (key === undefined) this.waiters.delete(wake);
    else {
      const set = this.keyed.get(key);
      set?.delete(wake);
      if (set?.size === 0) this.keyed.delete(key);
    }
  }
}
