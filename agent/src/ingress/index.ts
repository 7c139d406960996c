// The ingress routing mesh, agent side: every node serves every published ingress port.
export { IngressProxy, type IngressProxyOptions } from "./ingress-proxy";
export { KernelIngress, interfaceAddresses, type KernelIngressOptions } from "./ingress-kernel";
export {
  forwardedPorts,
  ingressChains,
  ingressJumps,
  ingressRules,
  planPorts,
  type IngressChains,
  type IngressRuleSet,
  type LocalEndpoint,
  type NodeView,
  type PortPlan,
} from "./ingress-rules";
export { checkIngressTable, type CheckedTable } from "./ingress-table";
export type { IngressApplyResult, IngressBackend, IngressDataPlane, IngressPort, IngressPortError, IngressTable } from "./ingress-types";
