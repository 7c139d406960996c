/**
 * Starts heartbeats when the provisioner configured them: it writes FLOTILLA_API_URL,
 * FLOTILLA_API_TOKEN, FLOTILLA_ENGINE_URL and FLOTILLA_MACHINE_NAME into the agent's env file.
 * An agent started by hand without them serves the Engine API alone, as dockerd would.
 */
import { InvalidError } from "@flotilla/core";
import type { ContainerRecord } from "../containers/container-types";
import { hostFacts } from "../system/host-info";
import { startHeartbeats, type HeartbeatContainer, type Heartbeats } from "./heartbeat";

// The API URL and token switch heartbeats on; the provisioner writes the engine URL either way.
const SWITCH = ["FLOTILLA_API_URL", "FLOTILLA_API_TOKEN"] as const;
const REQUIRED = [...SWITCH, "FLOTILLA_ENGINE_URL"] as const;

/** Docker's container statuses folded to the three a heartbeat reports. */
export function toHeartbeatContainer(c: ContainerRecord): HeartbeatContainer {
  const state = c.state.status === "running" || c.state.status === "restarting" ? "running" : c.state.status === "created" ? "created" : "exited";
  return {
    id: c.id,
    labels: c.config.Labels ?? {},
    state,
    ...(state === "exited" ? { exitCode: c.state.exitCode, oomKilled: c.state.oomKilled } : {}),
    ...(c.state.startedAt ? { startedAt: c.state.startedAt } : {}),
    ...(c.state.finishedAt ? { finishedAt: c.state.finishedAt } : {}),
  };
}

/** `KEY=VALUE,KEY=VALUE` node labels (FLOTILLA_NODE_LABELS). */
export function parseNodeLabels(raw: string | undefined): Record<string, string> {
  const labels: Record<string, string> = {};
  for (const pair of (raw ?? "").split(",").map((p) => p.trim()).filter(Boolean)) {
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
): Heartbeats | null {
  if (SWITCH.every((k) => !env[k])) return null;
  if (REQUIRED.some((k) => !env[k])) {
    const missing = REQUIRED.filter((k) => !env[k]);
    throw new InvalidError(`heartbeats need ${REQUIRED.join(", ")} together; missing ${missing.join(", ")}`, { field: missing[0] });
  }
  const facts = hostFacts();
  return startHeartbeats({
    apiUrl: env.FLOTILLA_API_URL!,
    token: env.FLOTILLA_API_TOKEN!,
    engineUrl: env.FLOTILLA_ENGINE_URL!,
    hostname: env.FLOTILLA_MACHINE_NAME || undefined,
    labels: parseNodeLabels(env.FLOTILLA_NODE_LABELS),
    listContainers: async () => containers.all().map(toHeartbeatContainer),
    resources: { nanoCpus: facts.ncpu * 1_000_000_000, memoryBytes: facts.memTotal },
    log,
  });
}
