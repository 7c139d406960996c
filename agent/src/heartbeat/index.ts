export {
  retryDelayMs,
  startHeartbeats,
  type BeatResult,
  type HeartbeatContainer,
  type HeartbeatOptions,
  type HeartbeatResources,
  type Heartbeats,
} from "./heartbeat";
export { chooseDataPlane, heartbeatsFromEnv, localEndpoints, parseDataPlane, parseNodeLabels, toHeartbeatContainer } from "./from-env";
