// The Flotilla host agent: a Docker Engine API subset over flotilla-shim. See README.md.
export { startAgent, type AgentHandle, type StartAgentOptions } from "./agent";
export { parseArgs, HELP, DEFAULT_ROOT, DEFAULT_SOCKET, DEFAULT_TLS_PORT, type AgentOptions, type TlsOptions } from "./config";
export { API_VERSION, MIN_API_VERSION } from "./api/router";
export type { NetworkPort, NetworkAttachment, NetworkPortMapping } from "./containers/network-port";
export type { ContainerRecord } from "./containers/container-types";
export type { DockerEvent } from "./events/event-bus";
