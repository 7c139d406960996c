// The pure domain of Flotilla: decisions, no I/O. Everything that touches the world lives elsewhere.
export * from "./errors";
export * from "./types";
export * from "./task-state";
export * from "./parsers";
export * from "./constraints";
export * from "./spec-validation";
export * from "./mounts";
export * from "./healthcheck";
export * from "./secrets";
export * from "./service-secrets";
export * from "./plan";
export * from "./restart-policy";
export { orchestrate, nodeProblem, type OrchestrateOptions } from "./orchestrator";
export {
  FILTERS,
  runFilters,
  availabilityFilter,
  constraintsFilter,
  countLive,
  cpuFilter,
  explain,
  maxReplicasFilter,
  memoryFilter,
  portKey,
  portsFilter,
  type FilterReason,
  type FilterResult,
  liveCountsOfNumbered,
  liveCountsWithout,
  type LiveCounts,
  type NodeState,
  type ReasonCounts,
  type SchedulerFilter,
  type TaskDemand,
} from "./scheduler-filters";
export * from "./scheduler";
export * from "./update-planner";
export * from "./reconcile";
export * from "./spec-diff";
export * from "./ingress";
export * from "./overlay-table";
export * from "./overlay";
export * from "./overlay-view";
export * from "./clock";
export * from "./heartbeat-fold";
export * from "./replica-urls";
export * from "./node-liveness";
export * from "./reconcile-decision";
export * from "./slot-hold";
export * from "./rebalance";
export * from "./dispatch-work";
export * from "./engine-url";
export * from "./token-check";
export * from "./registry-mirror";
export * from "./task-history";
export * from "./listing-freshness";
export { parseCompose, composeReferences, STACK_LABEL, type ComposeInput, type ComposeStack } from "./compose/compose";
export { commandOf, portOf } from "./compose/compose-fields";
export { parseEnvFile, interpolate, interpolateString } from "./compose/compose-interpolate";
export { validateComposeSchema } from "./compose/compose-schema";
export type { StackNetwork } from "./compose/compose-networks";
export * from "./compose/stack-plan";
export * from "./control-plane-replica";
export * from "./table-events";
