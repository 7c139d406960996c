// When a silent node may be declared down. Only evidence gathered while the control plane itself
// was healthy counts: during an outage (Postgres or Redis unreachable, the API down or
// restarting) agents cannot report, and after it each agent may still be waiting out its retry
// back-off. A node is down only once every agent has had a full window of heartbeats since the
// control plane became healthy again.

export interface LivenessInput {
  readonly now: number;
  /** When the control plane last became healthy (after an outage or a restart). */
  readonly healthySince: number;
  /** When an API process last proved it takes heartbeats; undefined if none ever did. */
  readonly intakeAliveAt: number | undefined;
  readonly periodMs: number;
  /** Heartbeats a node may miss in a row before it is down. */
  readonly missedBeats: number;
  /** The longest an agent waits between retries after failed heartbeats. */
  readonly agentMaxBackoffMs: number;
}

/** How long after the control plane becomes healthy before any node may be declared down. */
export function recoveryGraceMs(i: Pick<LivenessInput, "periodMs" | "missedBeats" | "agentMaxBackoffMs">): number {
  return i.missedBeats * i.periodMs + i.agentMaxBackoffMs;
}

/**
 * The heartbeat time before which a READY node is down now, or null when no node may be declared
 * down at all: the control plane has not been healthy for the recovery grace, or no API process
 * has proved within two periods that it takes heartbeats (silence is then ours, not the nodes').
 */
export function downCutoff(i: LivenessInput): number | null {
  if (i.now - i.healthySince < recoveryGraceMs(i)) return null;
  if (i.intakeAliveAt === undefined || i.now - i.intakeAliveAt > 2 * i.periodMs) return null;
  return i.now - i.missedBeats * i.periodMs;
}

/** The ids of nodes to declare down: ready, and silent since before the cutoff. */
export function nodesDown(
  nodes: readonly { readonly id: string; readonly status: string; readonly lastHeartbeatAt: number | null }[],
  i: LivenessInput,
): string[] {
  const cutoff = downCutoff(i);
  if (cutoff === null) return [];
  return nodes.filter((n) => n.status === "ready" && (n.lastHeartbeatAt ?? 0) < cutoff).map((n) => n.id);
}
