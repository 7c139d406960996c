// The tables agents long-poll for (the ingress mesh's, each node's overlay networks') share one
// shape: content with a version that changes whenever the content does, a short cache for the
// heartbeat replies that carry it as a fallback, and polls that wait until the version differs
// from the agent's. What changes the content is noticed from the event stream (subscribed on first
// use); without it a waiting poll still reads again every `recheckMs`. This is the
// waiting and caching alone, with no Nest and no I/O of its own, so it is tested by itself.
import { createHash } from "node:crypto";

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
  /** How long a poll waits without a change before reading again (changes missed: no events). */
  recheckMs: number;
  /** Longest wait a poll may ask for. */
  maxWaitMs: number;
  /** The events that may change the content (the event stream); subscribed once, on first use. */
  events(): { subscribe(next: (event: { kind: string }) => void): Unsubscribable };
  /** The event kinds that change the content; other events are ignored. */
  kinds: ReadonlySet<string>;
}

export class VersionedTable<C> {
  private cache: { at: number; value: Promise<C> } | undefined;
  private readonly waiters = new Set<() => void>();
  private watching: Unsubscribable | undefined;
  private closed = false;

  constructor(private readonly options: VersionedTableOptions) {}

  /** Starts watching for changes, once: on first use, so worker-only processes need no subscriber. */
  watch(): void {
    this.watching ??= this.options.events().subscribe((e) => {
      if (this.options.kinds.has(e.kind)) this.changed();
    });
  }

  /** The content changed: the cache is dropped and every waiting poll reads again at once. */
  changed(): void {
    this.cache = undefined;
    for (const wake of [...this.waiters]) wake();
  }

  /** Stops watching and answers every waiting poll (with "unchanged"), so shutdown does not wait for them. */
  close(): void {
    this.closed = true;
    this.watching?.unsubscribe();
    for (const wake of [...this.waiters]) wake();
  }

  /** `read()`'s result, shared by every caller within `cacheMs` of the read (and until a change). */
  cached(read: () => Promise<C>): Promise<C> {
    const now = this.options.now();
    if (!this.cache || now - this.cache.at >= this.options.cacheMs) {
      const value = read();
      this.cache = { at: now, value };
      // A failed read must not be served to the next callers.
      value.catch(() => {
        if (this.cache?.value === value) this.cache = undefined;
      });
    }
    return this.cache.value;
  }

  /**
   * `current()` once its version differs from `version`, or undefined when it has not changed
   * within `waitMs` (at most `maxWaitMs`) or the table is closing.
   */
  async waitFor<T extends { version: string }>(
    current: () => Promise<T>,
    version: string | undefined,
    waitMs: number,
  ): Promise<T | undefined> {
    this.watch();
    const deadline = this.options.now() + Math.min(waitMs, this.options.maxWaitMs);
    for (;;) {
      // Woken by a change that arrived during the read: read again rather than wait.
      let changed = false;
      const mark = () => {
        changed = true;
      };
      this.waiters.add(mark);
      const table = await current().finally(() => this.waiters.delete(mark));
      if (table.version !== version) return table;
      const left = deadline - this.options.now();
      if (left <= 0 || this.closed) return undefined;
      if (changed) continue;
      await this.nextChange(Math.min(left, this.options.recheckMs));
    }
  }

  /** Resolves at the next change, at `close`, or after `ms`, whichever comes first. */
  private nextChange(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const wake = () => {
        clearTimeout(timer);
        this.waiters.delete(wake);
        resolve();
      };
      const timer = setTimeout(wake, ms);
      this.waiters.add(wake);
    });
  }
}
