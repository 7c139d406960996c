// Listings are what ctl, the console and dashboards poll, often many at once. Concurrent reads
// of the same listing share one query: a read that arrives while the query for its key runs
// waits for the next one, which starts as soon as the running one ends. So every answer still
// reflects the database as of after its request arrived (a client sees its own writes), and N
// concurrent readers cost at most two queries instead of N. Nothing is kept once the queries
// end: this is not a cache, and no replica answers from state another could contradict.

interface Waiting<T> {
  promise: Promise<T>;
  resolve(v: T): void;
  reject(e: unknown): void;
  load: () => Promise<T>;
}

export class SharedReads<T> {
  /** Keys with a query running, and the readers waiting for the next one. */
  private readonly running = new Map<string, { next?: Waiting<T> }>();

  /** `load()`'s result, from a query that started after this call. */
  read(key: string, load: () => Promise<T>): Promise<T> {
    const entry = this.running.get(key);
    if (!entry) {
      const fresh = {};
      this.running.set(key, fresh);
      return this.run(key, fresh, load);
    }
    if (!entry.next) {
      let resolve!: (v: T) => void;
      let reject!: (e: unknown) => void;
      const promise = new Promise<T>((res, rej) => {
        resolve = res;
        reject = rej;
      });
      entry.next = { promise, resolve, reject, load };
    }
    return entry.next.promise;
  }

  /** How many keys have a query running (for tests). */
  get size(): number {
    return this.running.size;
  }

  private run(key: string, entry: { next?: Waiting<T> }, load: () => Promise<T>): Promise<T> {
    const result = Promise.resolve().then(load);
    const settled = () => {
      const next = entry.next;
      if (!next) {
        this.running.delete(key);
        return;
      }
      entry.next = undefined;
      this.run(key, entry, next.load).then(next.resolve, next.reject);
    };
    result.then(settled, settled);
    return result;
  }
}
