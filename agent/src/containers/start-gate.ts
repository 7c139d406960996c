/**
 * Attach calls that come before a container's start (docker run -i/-t attaches first): they
 * wait for the start's outcome, and while any waits the next start asks the shim to hold the
 * output until a client connects, so the first prompt is not lost. Also work on a stopped
 * container's file system (docker cp, export), which a start waits for.
 */
export class StartGate {
  private readonly listeners = new Map<string, Array<(ok: boolean) => void>>();
  private readonly holds = new Map<string, number>();
  private readonly offline = new Map<string, Set<Promise<unknown>>>();

  /** Wakes everyone waiting for the container's start: `ok` when it runs. */
  notify(id: string, ok: boolean): void {
    const list = this.listeners.get(id) ?? [];
    this.listeners.delete(id);
    for (const l of list) l(ok);
  }

  /** Resolves at the container's next start: true once it runs, false when the start failed. */
  untilStarted(id: string): Promise<boolean> {
    return new Promise((resolve) => {
      const list = this.listeners.get(id) ?? [];
      list.push(resolve);
      this.listeners.set(id, list);
    });
  }

  /** Whether an attach waits for the output (the shim should hold it). */
  held(id: string): boolean {
    return (this.holds.get(id) ?? 0) > 0;
  }

  /** Holds the next start's output for an attach; returns the release (idempotent). */
  hold(id: string): () => void {
    this.holds.set(id, (this.holds.get(id) ?? 0) + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const n = (this.holds.get(id) ?? 1) - 1;
      if (n > 0) this.holds.set(id, n);
      else this.holds.delete(id);
    };
  }

  /** Runs `work` on the stopped container's file system; a start waits until it is done. */
  async whileStopped<T>(id: string, work: () => Promise<T>): Promise<T> {
    const set = this.offline.get(id) ?? new Set();
    this.offline.set(id, set);
    const p = work();
    set.add(p);
    try {
      return await p;
    } finally {
      set.delete(p);
      if (!set.size) this.offline.delete(id);
    }
  }

  /** Resolves when no work on the stopped container's file system remains. */
  async stoppedWorkDone(id: string): Promise<void> {
    for (let set; (set = this.offline.get(id));) await Promise.allSettled([...set]);
  }
}
