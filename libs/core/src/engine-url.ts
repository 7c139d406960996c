// Where the control plane dials a node's agent. Never simply what the node's heartbeat says: an
// agent token (or a leaked one) must not be able to point dispatch and stray removal at another
// machine. A node with a machine record is reached at that machine's address, on the agent's
// port. A node without one (an agent registered by hand, or a simulated agent of the tests and
// the control-plane bench) is reached where its heartbeats say only when they come with an
// admin token: agent tokens exist only for machines, and an admin could point the control plane
// anywhere in any case.

export interface EngineUrlInput {
  /** The machine of the node's host name, if there is one; its address once the driver knows it. */
  readonly machine?: { readonly ip: string | null };
  /** The URL the heartbeat reported. */
  readonly reported: string;
  /** Whether the heartbeat came with an admin token (rather than an agent's). */
  readonly reporterIsAdmin: boolean;
  /** The URL on record. */
  readonly current: string | null;
  /** The port provisioned agents serve the Engine API on (mutual TLS). */
  readonly agentPort: number;
}

export function engineUrlFor(i: EngineUrlInput): string | null {
  if (i.machine) return i.machine.ip ? `https://${i.machine.ip.includes(":") ? `[${i.machine.ip}]` : i.machine.ip}:${i.agentPort}` : null;
  return i.reporterIsAdmin ? i.reported : i.current;
}
