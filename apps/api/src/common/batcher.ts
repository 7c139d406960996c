// Adaptive batching of one kind of call (a heartbeat's node touch, a dispatch job's read): at
// most `maxInFlight` batches run at once, and calls that arrive meanwhile wait to go together in
// the next one. At
// low load every call goes alone and at once; under load batches grow instead of each call
// queueing its own statement for the database pool — a thousand agents beating every 5 s are
// 200 calls a second, which as single statements held the pool and the event loop.

export interface BatcherOptions<I> {
  /** Batches running at once. */
  maxInFlight: number;
  /** Calls in one batch at most. */
  maxBatch: number;
  /**
   * Calls with the same key never share a batch nor run in two batches at once (two beats of
   * one node): a later one waits for the earlier one's batch to finish. Without it, any calls
   * may go together.
   */
  key?: (item: I) => string;
}

interface Waiting<I, O> {
  item: I;
  resolve: (out: O) => void;
  reject: (e: unknown) => void;
}

export class Batcher<I, O> {
  private queue: Waiting<I, O>[] = [];
  private readonly busyKeys = new Set<string>();
  private inFlight = 0;

  /** `run` answers every item of a batch, in order. */
  constructor(
    private readonly run: (items: I[]) => Promise<O[]>,
    private readonly opts: BatcherOptions<I>,
  ) {}

  call(item: I): Promise<O> {
    return new Promise<O>((resolve, reject) => {
      this.queue.push({ item, resolve, reject });
      this.pump();
    });
  }

  private pump(): void {
    while (this.inFlight < this.opts.maxInFlight && this.queue.length > 0) {
      const batch: Waiting<I, O>[] = [];
      const rest: Waiting<I, O>[] = [];
      const keys = new Set<string>();
      // Oldest first; a call whose key is busy keeps its place for a later batch.
      for (const w of this.queue) {
        const k = this.opts.key?.(w.item);
        if (batch.length >= this.opts.maxBatch || (k !== undefined && (this.busyKeys.has(k) || keys.has(k)))) rest.push(w);
        else {
          if (k !== undefined) keys.add(k);
          batch.push(w);
        }
      }
      this.queue = rest;
      if (batch.length === 0) return;
      this.inFlight++;
      for (const k of keys) this.busyKeys.add(k);
      void this.runBatch(batch, keys);
    }
  }

  private async runBatch(batch: Waiting<I, O>[], keys: Set<string>): Promise<void> {
    try {
      const out = await this.run(batch.map((w) => w.item));
      batch.forEach((w, i) => w.resolve(out[i]));
    } catch (e) {
      for (const w of batch) w.reject(e);
    } finally {
      this.inFlight--;
      for (const k of keys) this.busyKeys.delete(k);
      this.pump();
    }
  }
}
