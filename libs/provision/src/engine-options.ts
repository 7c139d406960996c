/** How the agent's engine is configured on a machine; read by provisioning and the service files. */
export interface EngineOptions {
  /** Registries the agent may reach over plain http (`--insecure-registry`). */
  insecureRegistries?: string[];
  /**
   * Host paths the machine's containers may not bind-mount (`--deny-bind`): the control plane's
   * config, data and state, for machines that share its host's filesystem (netns).
   */
  denyBinds?: string[];
}
