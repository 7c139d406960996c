// The agent's host network: bridge, NAT, published ports, one namespace per container.
export { HostNetwork } from "./host-network";
export type { AttachOptions, HostNetworkOptions, InitResult, RestoreResult } from "./host-network";
export type { Endpoint } from "./endpoint";
export type { NetworkMode } from "./state-file";
export type { PortRequest, Protocol, PublishedPort } from "./ports";
export { PortAllocatedError } from "./ports";
export { NetworkCommandError } from "./exec";
export type { IptablesBackend } from "./iptables";
export { toNetworkSettings, toPortSummaries } from "./docker-shapes";
export type { DockerEndpointSettings, DockerNetworkSettings, DockerPortBinding, DockerPortMap, DockerPortSummary } from "./docker-shapes";
