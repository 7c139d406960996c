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
  /**
   * When an API process last proved it takes heartbeats promptly (intakeKeepsUp); undefined if
   * none ever did.
   */
  readonly intakeAliveAt: number | undefined;
  /** The heartbeat period agents are told now (heartbeatPeriodMs). */
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
 * Whether the heartbeat intake proves it keeps up: no API process took heartbeats promptly
 * within the last period, and nodes are judged only from evidence gathered while one did.
 *
 * Why one period: a node goes down only when silent for missedBeats periods. Its beat sent one
 * period after its last recorded one reached an API process (if it arrived at all) at least one
 * period before the last proof; that proof says every beat that had arrived by then waited at
 * most a period (intakeKeepsUp), so that beat was recorded — the node is not silent. A proof older
 * than a period leaves room for a beat still queued in a process that fell behind.
 */
export function intakeProven(i: Pick<LivenessInput, "now" | "intakeAliveAt" | "periodMs">): boolean {
  return i.intakeAliveAt !== undefined && i.now - i.intakeAliveAt <= i.periodMs;
}

/**
 * The heartbeat time before which a READY node told `periodMs` is down now, or null when no node
 * may be declared down at all: the control plane has not been healthy for the recovery grace, or
 * no API process has proved within a period that it takes heartbeats promptly (silence is then
 * ours, not the nodes').
 */
export function downCutoff(i: LivenessInput): number | null {
  if (i.now - i.healthySince < recoveryGraceMs(i)) return null;
  if (!intakeProven(i)) return null;
  return i.now - i.missedBeats * i.periodMs;
}

/** A node as liveness judges it. */
export interface LivenessNode {
  readonly id: string;
  readonly status: string;
  readonly lastHeartbeatAt: number | null;
  /**
   * The period this node was told in its last reply (null: before periods were recorded). It
   * keeps that pace until its next reply, so it has that long even when the period shrank since.
   */
  readonly periodMs: number | null;
}

/**
 * The heartbeat time before which this node is silent for its whole window: missedBeats of the
 * longer of the period it was told and the current one (a node not yet told a longer period
 * beats faster, never slower). Null when no node may be declared down (downCutoff).
 */
export function nodeCutoff(n: Pick<LivenessNode, "periodMs">, i: LivenessInput): number | null {
  if (downCutoff(i) === null) return null;
  return i.now - i.missedBeats * Math.max(i.periodMs, n.periodMs ?? 0);
}

/** The nodes to declare down, with the cutoff each was judged by: ready, and silent since before it. */
export function nodesDown(nodes: readonly LivenessNode[], i: LivenessInput): { id: string; cutoff: number }[] {
  if (downCutoff(i) === null) return [];
  const out: { id: string; cutoff: number }[] = [];
  for (const n of nodes) {
    const cutoff = nodeCutoff(n, i)!;
    if (n.status === "ready" && (n.lastHeartbeatAt ?? 0) < cutoff) out.push({ id: n.id, cutoff });
  }
  return out;
}

/** What one API process saw of its own heartbeat handling since its last probe. */
export interface IntakeLoad {
  readonly now: number;
  readonly periodMs: number;
  /** When the oldest heartbeat still waiting to be recorded arrived; undefined: none waits. */
  readonly oldestWaitingSince: number | undefined;
  /** The longest a heartbeat recorded since the last probe waited, arrival to record (ms). */
  readonly longestWaitMs: number;
  /**
   * The longest the process's event loop was blocked since the last probe (ms): a request
   * arriving meanwhile waited that long before its arrival was even seen.
   */
  readonly loopDelayMs: number;
}

/**
 * Whether an API process takes heartbeats promptly: none waited, or waits, longer than a period
 * (counting the event loop's delay before a request is seen). A process that falls behind
 * proves nothing, so the node monitor never blames nodes for the control plane's own lateness.
 */
export function intakeKeepsUp(l: IntakeLoad): boolean {
  const waiting = l.oldestWaitingSince === undefined ? 0 : l.now - l.oldestWaitingSince;
  return Math.max(waiting, l.longestWaitMs) + l.loopDelayMs <= l.periodMs;
}

/** How the heartbeat period grows with the cluster (heartbeatPeriodMs). */
export interface PacingInput {
  /** The configured period: the pace of a small cluster. */
  readonly basePeriodMs: number;
  /** Registered nodes. */
  readonly nodes: number;
  /** The heartbeats per second the control plane is sized for. */
  readonly maxBeatsPerSecond: number;
}

/** The period never grows past this (nor below the configured one): the cost is slower down detection. */
export const MAX_STRETCHED_PERIOD_MS = 60_000;

/**
 * The heartbeat period agents are told: the configured one, stretched so that all nodes together
 * beat at most maxBeatsPerSecond (whole seconds, so one node more or less rarely changes it), and
 * never beyond MAX_STRETCHED_PERIOD_MS (or the configured period if that is longer). Beats
 * cost the control plane per node; a fixed period makes that cost grow with the cluster until
 * the intake falls behind.
 */
export function heartbeatPeriodMs(p: PacingInput): number {
  const needed = Math.ceil(p.nodes / p.maxBeatsPerSecond) * 1000;
  return Math.max(p.basePeriodMs, Math.min(needed, MAX_STRETCHED_PERIOD_MS));
}

/** The share by which an agent shortens each wait before a beat or a retry, at random. */
export const BEAT_JITTER = 0.1;

/**
 * The wait before an agent's next beat or retry: `ms` shortened by up to BEAT_JITTER, as
 * `random` (in [0, 1)) says. Agents that once beat together — all retrying after a control-plane
 * outage, or all answered at the end of a stall — otherwise beat together every period from then
 * on, and each period their beats arrive as one burst the intake must take at once. Never longer
 * than `ms`: the node monitor's window, counted in the periods agents are told, still holds.
 */
export function jitteredBeatDelayMs(ms: number, random: number): number {
  return Math.round(ms * (1 - BEAT_JITTER * Math.min(Math.max(random, 0), 1)));
}
