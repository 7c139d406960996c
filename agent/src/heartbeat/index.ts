export {
  retryDelayMs,
  startHeartbeats,
  type BeatResult,
  type HeartbeatContainer,
  type HeartbeatOptions,
  type HeartbeatResources,
  type Heartbeats,
} from "./heartbeat";
export { heartbeatsFromEnv, parseNodeLabels, toHeartbeatContainer } from "./from-env";
