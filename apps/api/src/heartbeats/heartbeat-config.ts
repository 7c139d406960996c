/** How often agents beat; a node that misses MISSED_BEATS of them in a row is marked down. */
export interface HeartbeatConfig {
  /** The configured period; agents are told a longer one in a large cluster (HeartbeatPace). */
  periodMs: number;
  /** The heartbeats per second the control plane is sized for (libs/core heartbeatPeriodMs). */
  maxBeatsPerSecond: number;
  /**
   * The longest an agent waits between retries after failed heartbeats (the agent's back-off):
   * after an outage, no node is declared down before it had that long to reach us again.
   */
  agentMaxBackoffMs: number;
  /**
   * Every replica's agent-facing URL (FLOTILLA_AGENT_API_URL), sent in each reply so an agent
   * provisioned before a replica was added learns it; empty: replies carry no list.
   */
  agentApiUrls: readonly string[];
}

export const MISSED_BEATS = 3;
export const HEARTBEAT_CONFIG = Symbol("HEARTBEAT_CONFIG");

/**
 * From AppConfig's FLOTILLA_HEARTBEAT_MS, FLOTILLA_AGENT_MAX_BACKOFF_MS and FLOTILLA_MAX_HEARTBEATS_PER_S,
 * and the machines config's FLOTILLA_AGENT_API_URL (validated at start-up).
 */
export function heartbeatConfig(
  config: { heartbeatMs: number; agentMaxBackoffMs: number; maxHeartbeatsPerSecond: number },
  machines: { agentApiUrls: readonly string[] },
): HeartbeatConfig {
  return {
    periodMs: config.heartbeatMs,
    agentMaxBackoffMs: config.agentMaxBackoffMs,
    maxBeatsPerSecond: config.maxHeartbeatsPerSecond,
    agentApiUrls: machines.agentApiUrls,
  };
}
