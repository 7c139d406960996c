/** The pending restarts of containers (restart policies), one timer per container at most. */
export class RestartTimers {
  private readonly timers = new Map<string, NodeJS.Timeout>();

  /** Runs `restart` after `delayMs`, replacing any restart already pending for `id`. */
  schedule(id: string, delayMs: number, restart: () => void): void {
    this.cancel(id);
    this.timers.set(
      id,
      setTimeout(() => {
        this.timers.delete(id);
        restart();
      }, delayMs),
    );
  }

  /** Cancels a pending restart; true if there was one. */
  cancel(id: string): boolean {
    const t = this.timers.get(id);
    if (!t) return false;
    clearTimeout(t);
    this.timers.delete(id);
    return true;
  }

  clear(): void {
    for (const t of this.timers.values()) clearTimeout(t);
    this.timers.clear();
  }
}
