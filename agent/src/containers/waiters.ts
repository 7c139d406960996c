/**
 * Callers waiting on a container (POST /wait, attach, logs -f, stop): resolved at its next exit
 * (or failed start) or at its removal, with Docker's wait answer.
 */

export type WaitCondition = "not-running" | "next-exit" | "removed";

/** The body of POST /containers/{id}/wait. */
export interface WaitResult {
  StatusCode: number;
  Error: { Message: string } | null;
}

type Moment = "exit" | "removed";

export class Waiters {
  private readonly byId = new Map<string, Array<{ moment: Moment; resolve: (r: WaitResult) => void }>>();

  /** Resolves at the container's next `moment`. */
  waitFor(id: string, moment: Moment): Promise<WaitResult> {
    return new Promise((resolve) => {
      const list = this.byId.get(id) ?? [];
      list.push({ moment, resolve });
      this.byId.set(id, list);
    });
  }

  /** Wakes everyone waiting for `moment` of the container. */
  settle(id: string, moment: Moment, result: WaitResult): void {
    const list = this.byId.get(id);
    if (!list) return;
    const keep = list.filter((w) => w.moment !== moment);
    for (const w of list) if (w.moment === moment) w.resolve(result);
    if (keep.length) this.byId.set(id, keep);
    else this.byId.delete(id);
  }
}

/** Whether `exit` resolves within `ms` (false when the time runs out first). */
export async function within(exit: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<false>((r) => (timer = setTimeout(() => r(false), ms)));
  try {
    return await Promise.race([exit.then(() => true as const), timeout]);
  } finally {
    clearTimeout(timer);
  }
}
