/**
 * Starts heartbeats when the provisioner configured them: it writes FLOTILLA_API_URL,
 * FLOTILLA_JOIN_TOKEN (traded once for the agent's own token, see join.ts), FLOTILLA_ENGINE_URL
 * and FLOTILLA_MACHINE_NAME into the agent's env file; FLOTILLA_API_TOKEN works instead of the
 * join token for an agent configured by hand. An agent started without them serves the Engine
 * API alone, as dockerd would. FLOTILLA_API_URL may list several replicas; the list a heartbeat
 * reply names replaces it, and is kept in the state dir (api-urls-file.ts).
 */
import { InvalidError } from "@flotilla/core";
import type { ContainerRecord, HealthState } from "../containers/container-types";
import { KernelIngress } from "../ingress/ingress-kernel";
import { IngressProxy } from "../ingress/ingress-proxy";
import type { LocalEndpoint } from "../ingress/ingress-rules";
import type { IngressDataPlane } from "../ingress/ingress-types";
import { hostFacts } from "../system/host-info";
import type { HeartbeatContainer, Heartbeats } from "./heartbeat";
import { saveApiUrls, startingApiUrl } from "./api-urls-file";
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

/** The tcp ports this node's running containers publish, for the kernel mesh's local backends. */
export function localEndpoints(records: readonly ContainerRecord[]): LocalEndpoint[] {
  const out: LocalEndpoint[] = [];
  for (const c of records) {
    if (c.state.status !== "running" || !c.network?.ipAddress) continue;
    for (const p of c.network.ports)
      if (p.hostPort > 0) out.push({ hostPort: p.hostPort, protocol: p.protocol, ip: c.network.ipAddress, containerPort: p.containerPort });
  }
  return out;
}

export interface IngressSettings {
  /** The network module's chain prefix (--chain-prefix). */
  chainPrefix?: string;
  /** kernel (iptables), proxy (userland), or auto (default): kernel where iptables works, else the proxy. */
  dataPlane?: "auto" | "kernel" | "proxy";
}

/**
 * The mesh's data plane: iptables rules when this agent can use iptables (root, a working
 * iptables), else the userland proxy, said once in the log with the reason.
 */
export async function chooseDataPlane(
  settings: IngressSettings,
  containers: { all(): ContainerRecord[] },
  log: (message: string) => void,
): Promise<IngressDataPlane> {
  const want = settings.dataPlane ?? "auto";
  if (want !== "proxy") {
    try {
      if (process.getuid?.() !== 0) throw new Error("the agent does not run as root");
      const kernel = await KernelIngress.create({
        chainPrefix: settings.chainPrefix,
        localEndpoints: () => localEndpoints(containers.all()),
        log,
      });
      log("ingress: published ports are forwarded by the kernel (iptables DNAT)");
      return kernel;
    } catch (e) {
      if (want === "kernel") throw e;
      log(
        `ingress: no kernel forwarding (${(e as Error).message}); published ports are served by the userland proxy, without traffic=local`,
      );
    }
  }
  return new IngressProxy({ log });
}

/** FLOTILLA_INGRESS: auto (default), kernel or proxy. */
export function parseDataPlane(raw: string | undefined): "auto" | "kernel" | "proxy" {
  const v = (raw ?? "").trim() || "auto";
  if (v !== "auto" && v !== "kernel" && v !== "proxy")
    throw new InvalidError(`FLOTILLA_INGRESS: ${JSON.stringify(raw)} is not auto, kernel or proxy`, { field: "FLOTILLA_INGRESS" });
  return v;
}

/** The overlay networks of the node, as the heartbeats feed them (agent/src/overlay). */
export interface OverlayTableSink {
  readonly version: string | undefined;
  apply(table: unknown): Promise<unknown>;
  /** How it asks for the table at once, when a create names a network it does not know. */
  setFetcher(fetch: () => Promise<unknown>): void;
}

export function heartbeatsFromEnv(
  env: NodeJS.ProcessEnv,
  containers: { all(): ContainerRecord[] },
  log: (message: string) => void,
  /** The agent's state dir (--root), where the token from the join is kept. */
  stateDir?: string,
  ingressSettings: IngressSettings = {},
  /** Overlay networks to feed with the control plane's table; absent: none asked for. */
  overlay?: OverlayTableSink,
): Heartbeats | null {
  const credential = credentialFromEnv(env);
  if (!credential) return null;
  const facts = hostFacts();
  // The ingress mesh is fed by the control plane, so it exists exactly when heartbeats do.
  const dataPlane = ingressSettings.dataPlane ?? parseDataPlane(env.FLOTILLA_INGRESS);
  let ingress: IngressDataPlane | undefined;
  const choosing = chooseDataPlane({ ...ingressSettings, dataPlane }, containers, log).then((plane) => (ingress = plane));
  choosing.catch((e: Error) => log(`ingress: FLOTILLA_INGRESS=kernel but ${e.message}; published ports are not served`));
  const envUrl = env.FLOTILLA_API_URL!;
  let refreshing: Promise<void> | undefined;
  const heartbeats = startJoinedHeartbeats(credential, stateDir, {
    apiUrl: startingApiUrl(envUrl, stateDir),
    onApiUrls: (urls) => {
      if (!stateDir) return;
      try {
        saveApiUrls(stateDir, envUrl, urls);
      } catch (e) {
        log(
          `could not save the control plane's replica list in ${stateDir} (${(e as Error).message}); a restart starts from FLOTILLA_API_URL`,
        );
      }
    },
    engineUrl: env.FLOTILLA_ENGINE_URL!,
    hostname: env.FLOTILLA_MACHINE_NAME || undefined,
    labels: parseNodeLabels(env.FLOTILLA_NODE_LABELS),
    listContainers: async () => {
      // Every beat also re-reads which tasks run here, so the kernel mesh drops a local task that
      // stopped without waiting for the control plane's next table. Not awaited, one at a time:
      // a refresh waits behind the table being applied and runs iptables itself, seconds on a
      // slow machine, and a beat held that long would read as the node gone silent.
      refreshing ??= ingress
        ?.refresh()
        .catch((e: Error) => log(`ingress: refresh failed: ${e.message}`))
        .finally(() => (refreshing = undefined));
      return containers.all().map(toHeartbeatContainer);
    },
    resources: { nanoCpus: facts.ncpu * 1_000_000_000, memoryBytes: facts.memTotal },
    log,
    ingressVersion: () => ingress?.version,
    onIngress: async (table) => {
      await (await choosing).apply(table);
    },
    ...(overlay
      ? {
          networksVersion: () => overlay.version,
          onNetworks: async (table: unknown) => {
            await overlay.apply(table);
          },
        }
      : {}),
  });
  overlay?.setFetcher(() => heartbeats.fetchNetworks());
  // Stopping the heartbeats (agent shutdown) closes the mesh too (listeners, or the kernel's
  // rules); beats first, so no reply can apply a table to a closing data plane.
  const stopBeats = heartbeats.stop.bind(heartbeats);
  heartbeats.stop = async () => {
    await stopBeats();
    await (await choosing.catch(() => undefined))?.close();
  };
  return heartbeats;
}
