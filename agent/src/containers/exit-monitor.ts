/**
 * Notices when a container's shim records an exit. inotify on each running container's shim
 * state dir (state.json is replaced by rename, so the directory is watched, not the file) gives
 * prompt notice; a slow poll covers missed events and shims that died without writing "exited"
 * (someone SIGKILLed the monitor): their control FIFO has no reader any more.
 */
import { watch, type FSWatcher } from "node:fs";

export type CheckFn = (id: string, fromPoll: boolean) => void;

export class ExitMonitor {
  private readonly watchers = new Map<string, FSWatcher | null>();
  private timer: NodeJS.Timeout | null = null;

  /** `check(id)` is called on every change; it must be cheap and idempotent. */
  constructor(
    private readonly check: CheckFn,
    private readonly pollMs = 1000,
  ) {}

  /** Starts watching a running container's shim state dir. */
  watch(id: string, stateDir: string): void {
    this.unwatch(id);
    let w: FSWatcher | null = null;
    try {
      w = watch(stateDir, { persistent: false }, (_event, file) => {
        if (!file || file === "state.json") this.check(id, false);
      });
      w.on("error", () => this.unwatch(id));
    } catch {
      // the dir vanished: the poll will see the shim is gone
    }
    this.watchers.set(id, w);
    if (!this.timer) {
      this.timer = setInterval(() => {
        for (const watched of [...this.watchers.keys()]) this.check(watched, true);
      }, this.pollMs);
      this.timer.unref();
    }
  }

  unwatch(id: string): void {
    const w = this.watchers.get(id);
    w?.close();
    this.watchers.delete(id);
    if (!this.watchers.size && this.timer) {
      clearInterval(this.timer);
      this.timer = null;
    }
  }

  close(): void {
    for (const id of [...this.watchers.keys()]) this.unwatch(id);
  }
}
