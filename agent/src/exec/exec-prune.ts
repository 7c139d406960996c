/**
 * Which finished exec records to forget. dockerd keeps an exec's record after it ends (so
 * `docker exec` can read its exit code) and drops it a few minutes later in a periodic sweep;
 * the agent does the same, and also bounds how many finished ones a container keeps, so a
 * container probed by a health check every second never piles up records.
 */

export interface ExecRetention {
  /** How long a finished exec stays inspectable. */
  ttlMs: number;
  /** At most this many finished execs per container; the oldest go first. */
  maxEndedPerContainer: number;
  /** How often running execs are checked for their end and old ones dropped. */
  sweepMs: number;
}

export const DEFAULT_EXEC_RETENTION: ExecRetention = { ttlMs: 5 * 60_000, maxEndedPerContainer: 64, sweepMs: 60_000 };

export interface ExecAge {
  id: string;
  containerId: string;
  /** When it ended (ms since the epoch); null while created or running. */
  endedAt: number | null;
}

/** The IDs to drop at `now`: finished longer than the TTL ago, or beyond a container's bound. */
export function execsToPrune(execs: readonly ExecAge[], now: number, r: Pick<ExecRetention, "ttlMs" | "maxEndedPerContainer">): string[] {
  const drop = new Set<string>();
  const ended = new Map<string, ExecAge[]>();
  for (const x of execs) {
    if (x.endedAt === null) continue;
    if (now - x.endedAt >= r.ttlMs) drop.add(x.id);
    else ended.set(x.containerId, [...(ended.get(x.containerId) ?? []), x]);
  }
  for (const list of ended.values()) {
    const newestFirst = [...list].sort((a, b) => b.endedAt! - a.endedAt!);
    for (const x of newestFirst.slice(Math.max(0, r.maxEndedPerContainer))) drop.add(x.id);
  }
  return [...drop];
}
