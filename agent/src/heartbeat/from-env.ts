/**
 * Starts heartbeats when the provisioner configured them: it writes FLOTILLA_API_URL,
 * FLOTILLA_JOIN_TOKEN (traded once for the agent's own token, see join.ts), FLOTILLA_ENGINE_URL
 * and FLOTILLA_MACHINE_NAME into the agent's env file; FLOTILLA_API_TOKEN works instead of the
 * join token for an agent configured by hand. An agent started without them serves the Engine
 * API alone, as dockerd would.
 */
import { InvalidError } from "@flotilla/core";
import type { ContainerRecord, HealthState } from "../containers/container-types";
import { IngressProxy } from "../ingress/ingress-proxy";
import { hostFacts } from "../system/host-info";
import type { HeartbeatContainer, Heartbeats } from "./heartbeat";
import { credentialFromEnv, startJoinedHeartbeats } from "./join";

/** Docker's container statuses folded to the three a heartbeat reports. */
function lastHealthOutput(h: HealthState): { healthOutput?: string } {
  const last = h.Log[h.Log.length - 1];
  return last && last.ExitCode !== 0 ? { healthOutput: last.Output.slice(0, 1000) } : {};
}

export function toHeartbeatContainer(c: ContainerRecord): HeartbeatContainer {
  const state =
    c.state.status === "running" || c.state.status === "restarting" ? "running" : c.state.status === "created" ? "created" : "exited";
  return {
    id: c.id,
    labels: c.config.Labels ?? {},
    state,
    ...(state === "exited" ? { exitCode: c.state.exitCode, oomKilled: c.state.oomKilled } : {}),
    // The control plane counts a task with a health check as running only once healthy.
    ...(state === "running" && c.state.health ? { health: c.state.health.Status, ...lastHealthOutput(c.state.health) } : {}),
    ...(c.state.startedAt ? { startedAt: c.state.startedAt } : {}),
    ...(c.state.finishedAt ? { finishedAt: c.state.finishedAt } : {}),
  };
}

/** `KEY=VALUE,KEY=VALUE` node labels (FLOTILLA_NODE_LABELS). */
export function parseNodeLabels(raw: string | undefined): Record<string, string> {
  const labels: Record<string, string> = {};
  for (const pair of (raw ?? "")
    .split(",")
    .map((p) => p.trim())
    .filter(Boolean)) {
    const at = pair.indexOf("=");
    if (at <= 0) throw new InvalidError(`FLOTILLA_NODE_LABELS: "${pair}" is not KEY=VALUE`, { field: "FLOTILLA_NODE_LABELS" });
    labels[pair.slice(0, at)] = pair.slice(at + 1);
  }
  return labels;
}

export function heartbeatsFromEnv(
  env: NodeJS.ProcessEnv,
  containers: { all(): ContainerRecord[] },
  log: (message: string) => void,
  /** The agent's state dir (--root), where the token from the join is kept. */
  stateDir?: string,
): Heartbeats | null {
  const credential = credentialFromEnv(env);
  if (!credential) return null;
  const facts = hostFacts();
  // The ingress mesh is fed by heartbeat replies, so it exists exactly when heartbeats do.
  const ingress = new IngressProxy({ log });
  const heartbeats = startJoinedHeartbeats(credential, stateDir, {
    apiUrl: env.FLOTILLA_API_URL!,
    engineUrl: env.FLOTILLA_ENGINE_URL!,
    hostname: env.FLOTILLA_MACHINE_NAME || undefined,
    labels: parseNodeLabels(env.FLOTILLA_NODE_LABELS),
    listContainers: async () => containers.all().map(toHeartbeatContainer),
    resources: { nanoCpus: facts.ncpu * 1_000_000_000, memoryBytes: facts.memTotal },
    log,
    ingressVersion: () => ingress.version,
    onIngress: async (table) => {
      await ingress.apply(table);
    },
  });
  // Stopping the heartbeats (agent shutdown) closes the mesh's listeners too; beats first, so
  // no reply can apply a table to a closing proxy.
  const stopBeats = heartbeats.stop.bind(heartbeats);
  heartbeats.stop = async () => {
    await stopBeats();
    await ingress.close();
  };
  return heartbeats;
}
