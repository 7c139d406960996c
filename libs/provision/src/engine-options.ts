/** How the agent's engine is configured on a machine; read by provisioning and the service files. */
export interface EngineOptions {
  /** Registries the agent may reach over plain http (`--insecure-registry`). */
  insecureRegistries?: string[];
}
