/** How often agents beat; a node that misses MISSED_BEATS of them in a row is marked down. */
export interface HeartbeatConfig {
  periodMs: number;
}

export const MISSED_BEATS = 3;
export const HEARTBEAT_CONFIG = Symbol("HEARTBEAT_CONFIG");

/** From AppConfig's FLOTILLA_HEARTBEAT_MS (validated at start-up with the rest). */
export function heartbeatConfig(config: { heartbeatMs: number }): HeartbeatConfig {
  return { periodMs: config.heartbeatMs };
}
