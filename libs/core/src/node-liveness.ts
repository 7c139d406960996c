// When a silent node may be declared down. Only evidence gathered while the control plane itself
// was healthy counts: during an outage (Postgres or Redis unreachable, the API down or
// restarting) agents cannot report, and after it each agent may still be waiting out its retry
// back-off. An agent's back-off doubles from one period with each failed beat, so its next try
// comes at most about as long after the outage ended as the outage lasted (plus a period), and
// never later than its cap. A node is down only once every agent has had that long plus a full
// window of heartbeats since the control plane became healthy again.

export interface LivenessInput {
  readonly now: number;
  /** When the control plane last became healthy (after an outage or a restart). */
  readonly healthySince: number;
  /** When the outage that ended at healthySince began (healthySince itself if unknown). */
  readonly outageStartedAt: number;
  /** When an API process last proved it takes heartbeats; undefined if none ever did. */
  readonly intakeAliveAt: number | undefined;
  readonly periodMs: number;
  /** Heartbeats a node may miss in a row before it is down. */
  readonly missedBeats: number;
  /** The longest an agent waits between retries after failed heartbeats. */
  readonly agentMaxBackoffMs: number;
}

/** How long after the control plane becomes healthy before any node may be declared down. */
export function recoveryGraceMs(
  i: Pick<LivenessInput, "periodMs" | "missedBeats" | "agentMaxBackoffMs" | "healthySince" | "outageStartedAt">,
): number {
  const outage = Math.max(0, i.healthySince - i.outageStartedAt);
  return i.missedBeats * i.periodMs + Math.min(i.agentMaxBackoffMs, outage + i.periodMs);
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
