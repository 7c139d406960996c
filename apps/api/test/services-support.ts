// Helpers shared by the services/nodes/reconcile/heartbeat suites: a control plane with fast
// heartbeats, simulated agents that heartbeat to it, and polling until a condition holds.
import { ACTIVE_TASK_STATES } from "@flotilla/core";
import { startTestApi, type TestApi } from "./support";
import { SimAgent, startSimAgents, type SimAgentOptions } from "../../../test/support/sim-agent";

// Fast enough for node-down tests (3 missed beats = 1.5 s), slow enough that a loaded CI box
// does not miss beats and see nodes flap.
export const HEARTBEAT_MS = 500;

/** Starts the API with fast heartbeats. */
export async function startFastApi(env: Record<string, string> = {}): Promise<TestApi> {
  // Simulated agents beat on a fixed interval, with no back-off to wait out after an outage.
  return startTestApi({
    FLOTILLA_ROLE: "all",
    FLOTILLA_LOG_LEVEL: "error",
    FLOTILLA_HEARTBEAT_MS: String(HEARTBEAT_MS),
    FLOTILLA_AGENT_MAX_BACKOFF_MS: String(HEARTBEAT_MS),
    ...env,
  });
}

export async function simNodes(
  api: TestApi,
  count: number,
  opts: Partial<SimAgentOptions> & { prefix?: string; labelsOf?: (i: number) => Record<string, string> } = {},
): Promise<SimAgent[]> {
  const agents = await startSimAgents(count, {
    apiUrl: api.url,
    token: api.token,
    heartbeatMs: HEARTBEAT_MS,
    images: ["busybox:latest", "nginx:latest"],
    ...opts,
  });
  return agents;
}

import { until } from "../../../test/support/until";

export { until };

export interface TaskJson {
  id: string;
  name: string;
  slot: number | null;
  nodeId: string | null;
  nodeHostname: string | null;
  state: string;
  desiredState: string;
  message: string | null;
  containerId: string | null;
  specVersion: number;
}

export async function getJson<T>(api: TestApi, path: string): Promise<T> {
  const res = await api.fetch(path);
  if (!res.ok) throw new Error(`GET ${path}: ${res.status} ${await res.text()}`);
  return (await res.json()) as T;
}

export async function send(api: TestApi, method: string, path: string, body?: unknown): Promise<Response> {
  return api.fetch(path, { method, ...(body !== undefined ? { body: JSON.stringify(body) } : {}) });
}

export const tasksOf = (api: TestApi, service: string) => getJson<TaskJson[]>(api, `/api/v1/tasks?service=${service}`);

/** Live tasks (desired running, not finished). */
export const live = (ts: TaskJson[]) => ts.filter((t) => t.desiredState === "running" && ACTIVE.has(t.state));
const ACTIVE: ReadonlySet<string> = new Set(ACTIVE_TASK_STATES);

/** Waits until the service has exactly `n` live tasks, all RUNNING. */
export async function converged(api: TestApi, service: string, n: number, ms = 20_000): Promise<TaskJson[]> {
  return until(
    `${service} to run ${n} tasks`,
    async () => {
      const l = live(await tasksOf(api, service));
      return l.length === n && l.every((t) => t.state === "RUNNING") ? l : undefined;
    },
    ms,
  );
}

/** All containers running on the agents, labelled with their task. */
export const runningContainers = (agents: SimAgent[]) =>
  agents.flatMap((a) =>
    a.running().map((c) => ({
      agent: a.opts.hostname,
      taskId: c.labels["flotilla.task.id"],
      slot: c.labels["flotilla.slot"],
      serviceId: c.labels["flotilla.service.id"],
    })),
  );
