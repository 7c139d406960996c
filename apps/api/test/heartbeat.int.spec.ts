import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { TestApi } from "./support";
import type { SimAgent } from "../../../test/support/sim-agent";
import {
  converged,
  getJson,
  HEARTBEAT_MS,
  live,
  runningContainers,
  send,
  simNodes,
  startFastApi,
  tasksOf,
  until,
} from "./services-support";

describe("heartbeats and node failure", () => {
  let api: TestApi;
  let agents: SimAgent[];
  beforeAll(async () => {
    api = await startFastApi();
    agents = await simNodes(api, 3);
  });
  afterAll(async () => {
    await Promise.all((agents ?? []).map((a) => a.stop()));
    await api?.stop();
  });

  it("validates heartbeats", async () => {
    const res = await send(api, "POST", "/api/v1/nodes/heartbeat", {
      hostname: "x",
      engineUrl: "ftp://x",
      resources: { nanoCpus: 1, memoryBytes: 1 },
      containers: [],
    });
    expect(res.status).toBe(400);
    expect((await res.json()).details.field).toBe("engineUrl");
    expect((await api.fetch("/api/v1/nodes/heartbeat", { method: "POST", body: "{}", token: null })).status).toBe(401);
  });

  it("folds container exits into task states, forward only, and restarts the slot", async () => {
    await send(api, "POST", "/api/v1/services", { name: "crashy", image: "busybox", replicas: 1, restartPolicy: { delayMs: 0 } });
    const [task] = await converged(api, "crashy", 1);
    const agent = agents.find((a) => a.opts.hostname === task.nodeHostname)!;
    agent.exit(task.id, 3);
    const failed = await until("the task to fail", async () =>
      (await tasksOf(api, "crashy")).find((t) => t.id === task.id && t.state === "FAILED"),
    );
    expect(failed).toMatchObject({ slot: 1 });
    const t = await getJson<{ exitCode: number; error: string }>(api, `/api/v1/tasks/${task.id}`);
    expect(t).toMatchObject({ exitCode: 3, error: "task: non-zero exit (3)" });
    // A late report claiming the old container runs again changes nothing.
    await send(api, "POST", "/api/v1/nodes/heartbeat", {
      hostname: agent.opts.hostname,
      engineUrl: agent.url,
      resources: { nanoCpus: 4_000_000_000, memoryBytes: 8 * 1024 ** 3 },
      containers: [{ id: task.containerId, labels: { "flotilla.task.id": task.id }, state: "running" }],
    });
    expect((await getJson<{ state: string }>(api, `/api/v1/tasks/${task.id}`)).state).toBe("FAILED");
    const [replacement] = await converged(api, "crashy", 1);
    expect(replacement.id).not.toBe(task.id);
    expect(replacement.slot).toBe(1);
  });

  it("fails a task whose container vanished from its node, but not on one report that predates it", async () => {
    await send(api, "POST", "/api/v1/services", { name: "vanish", image: "busybox", replicas: 1, restartPolicy: { delayMs: 0 } });
    const [task] = await converged(api, "vanish", 1);
    const agent = agents.find((a) => a.opts.hostname === task.nodeHostname)!;
    // Running for longer than the window in which a report may lag behind the dispatcher.
    await new Promise((r) => setTimeout(r, 4 * HEARTBEAT_MS));
    // A late report, built before the container existed: the agent's next ones list it again.
    const late = await send(api, "POST", "/api/v1/nodes/heartbeat", {
      hostname: agent.opts.hostname,
      engineUrl: agent.url,
      resources: { nanoCpus: 4_000_000_000, memoryBytes: 8 * 1024 ** 3 },
      containers: [],
    });
    expect(late.status).toBe(200);
    await new Promise((r) => setTimeout(r, 4 * HEARTBEAT_MS));
    expect((await getJson<{ state: string }>(api, `/api/v1/tasks/${task.id}`)).state).toBe("RUNNING");
    // Gone for good: missing from report after report.
    const container = [...agent.containers.values()].find((c) => c.labels["flotilla.task.id"] === task.id)!;
    agent.containers.delete(container.id);
    const failed = await until("the task to fail", async () => {
      const t = await getJson<{ state: string; error: string }>(api, `/api/v1/tasks/${task.id}`);
      return t.state === "FAILED" ? t : undefined;
    });
    expect(failed.error).toBe("task: container removed while it should be running");
    const [replacement] = await converged(api, "vanish", 1);
    expect(replacement.id).not.toBe(task.id);
    expect(replacement.slot).toBe(1);
  });

  it("marks a silent node DOWN, replaces its tasks elsewhere, and removes the strays when it returns", async () => {
    const res = await send(api, "POST", "/api/v1/services", { name: "ha", image: "busybox", replicas: 3 });
    const { id } = (await res.json()) as { id: string };
    const before = await converged(api, "ha", 3);
    const victim = agents[2];
    const lost = before.filter((t) => t.nodeHostname === victim.opts.hostname);
    expect(lost.length).toBe(1);
    victim.pauseHeartbeats();
    await until(
      "the node to go down",
      async () => (await getJson<{ status: string }>(api, `/api/v1/nodes/${victim.opts.hostname}`)).status === "down",
      10_000,
    );
    const after = await until("ha on the other nodes", async () => {
      const l = live(await tasksOf(api, "ha"));
      return l.length === 3 && l.every((t) => t.state === "RUNNING" && t.nodeHostname !== victim.opts.hostname) ? l : undefined;
    });
    expect(after.map((t) => t.slot).sort()).toEqual([1, 2, 3]);
    expect((await getJson<{ state: string }>(api, `/api/v1/tasks/${lost[0].id}`)).state).toBe("ORPHANED");
    // Back: the old container is a stray (its task was replaced) and goes away; no slot doubles.
    expect(victim.running().some((c) => c.labels["flotilla.task.id"] === lost[0].id)).toBe(true);
    victim.resumeHeartbeats();
    await until(
      "the node to be ready",
      async () => (await getJson<{ status: string }>(api, `/api/v1/nodes/${victim.opts.hostname}`)).status === "ready",
    );
    await until("the stray to be removed", async () => !victim.running().some((c) => c.labels["flotilla.task.id"] === lost[0].id));
    const containers = runningContainers(agents).filter((c) => c.serviceId === id);
    expect(containers.length).toBe(3);
    expect(new Set(containers.map((c) => c.slot)).size).toBe(3);
  });

  it("removes a down node only when asked, and its tasks stay replaced", async () => {
    const victim = agents[1];
    victim.pauseHeartbeats();
    expect((await send(api, "DELETE", `/api/v1/nodes/${victim.opts.hostname}`)).status).toBe(409);
    await until(
      "the node to go down",
      async () => (await getJson<{ status: string }>(api, `/api/v1/nodes/${victim.opts.hostname}`)).status === "down",
      10_000,
    );
    expect((await send(api, "DELETE", `/api/v1/nodes/${victim.opts.hostname}`)).status).toBe(204);
    await until("ha on the remaining nodes", async () => {
      const l = live(await tasksOf(api, "ha"));
      return l.length === 3 && l.every((t) => t.state === "RUNNING" && t.nodeHostname !== victim.opts.hostname);
    });
    const nodes = await getJson<{ hostname: string }[]>(api, "/api/v1/nodes");
    expect(nodes.map((n) => n.hostname)).not.toContain(victim.opts.hostname);
  });
});
