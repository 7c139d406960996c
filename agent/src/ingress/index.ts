// The ingress routing mesh, agent side: every node serves every published ingress port.
export { IngressProxy, type IngressProxyOptions } from "./ingress-proxy";
export { checkIngressTable, type CheckedTable } from "./ingress-table";
export type { IngressApplyResult, IngressBackend, IngressPort, IngressPortError, IngressTable } from "./ingress-types";
