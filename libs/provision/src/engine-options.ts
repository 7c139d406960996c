/** How the agent's engine is configured on a machine; read by provisioning and the service files. */
export interface EngineOptions {
  /** Registries the agent may reach over plain http (`--insecure-registry`). */
  insecureRegistries?: string[];
  /** Docker Hub mirrors, http(s)://host[:port] (`--registry-mirror`), tried before Docker Hub. */
  registryMirrors?: string[];
  /**
   * Host paths the machine's containers may not bind-mount (`--deny-bind`): the control plane's
   * config, data and state, for machines that share its host's filesystem (netns).
   */
  denyBinds?: string[];
  /** Extra environment of the agent (`--engine-env`), e.g. HTTP_PROXY. */
  env?: Record<string, string>;
  /** Labels of the machine's node (`--engine-label`), reported by the agent's heartbeats. */
  labels?: Record<string, string>;
}

/** What the engine options add to the agent's environment file: labels as FLOTILLA_NODE_LABELS, then env as given. */
export function engineEnvironment(engine: EngineOptions): Record<string, string> {
  const out: Record<string, string> = {};
  const labels = Object.entries(engine.labels ?? {});
  if (labels.length) out.FLOTILLA_NODE_LABELS = labels.map(([k, v]) => `${k}=${v}`).join(",");
  return { ...out, ...engine.env };
}
