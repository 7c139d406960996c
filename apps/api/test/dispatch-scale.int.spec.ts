// The batched paths at a size where batching happens: many agents beating at once (their touches
// share statements), a service wider than one launch batch (outcomes recorded batch by batch
// while launches continue), and the agents a launch batch cannot serve as it is: one from before
// batches, one without the image.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PrismaService } from "../src/database/prisma.service";
import type { TestApi } from "./support";
import type { SimAgent, SimAgentOptions } from "../../../test/support/sim-agent";
import { converged, getJson, runningContainers, send, simNodes, startFastApi, until } from "./services-support";

describe("dispatch and heartbeats at scale", () => {
  let api: TestApi;
  let agents: SimAgent[];
  // This file once took 80 s where its tests took 4 s, in runs beside other suites, and not
  // again when timed: a slow step says which, for the next time.
  const timed = async <T>(step: string, fn: () => Promise<T>): Promise<T> => {
    const t = Date.now();
    try {
      return await fn();
    } finally {
      if (Date.now() - t > 10_000) console.warn(`dispatch-scale: ${step} took ${Date.now() - t} ms`);
    }
  };
  beforeAll(async () => {
    api = await timed("starting the API", () => startFastApi());
    agents = await timed("starting 24 agents", () => simNodes(api, 24, { prefix: "wide" }));
  });
  afterAll(async () => {
    await timed("stopping the agents", () => Promise.all((agents ?? []).map((a) => a.stop())));
    await timed("stopping the API", async () => api?.stop());
  });

  it("runs a service wider than a dispatch chunk through the dispatcher, one RUNNING event per task", async () => {
    const res = await send(api, "POST", "/api/v1/services", { name: "wide", image: "busybox", replicas: 600 });
    const { id } = (await res.json()) as { id: string };
    // Well within the 30 s after which a claim counts as abandoned and a heartbeat folds it:
    // every outcome was recorded by the dispatcher that launched it.
    const tasks = await converged(api, "wide", 600, 25_000);
    expect(new Set(tasks.map((t) => t.slot)).size).toBe(600);
    const containers = runningContainers(agents).filter((c) => c.serviceId === id);
    expect(containers.length).toBe(600);
    expect(new Set(containers.map((c) => c.taskId)).size).toBe(600);

    const prisma = api.running.app.get(PrismaService);
    const events = await prisma.sql.query<{ subjectId: string; n: number }>(
      `SELECT "subjectId", count(*)::int AS n FROM "Event"
       WHERE kind = 'task' AND action = 'state' AND data->>'state' = 'RUNNING' AND data->>'serviceId' = $1
       GROUP BY 1`,
      [id],
    );
    expect(events.length).toBe(600);
    expect(events.every((e) => e.n === 1)).toBe(true);

    // A node's containers went a batch per request: none was created alone, and no node got a
    // request per container (25 each).
    for (const a of agents) {
      expect(a.calls.filter((c) => c === "POST /containers/create")).toEqual([]);
      const launches = a.calls.filter((c) => c === "POST /flotilla/containers/launch").length;
      expect(launches).toBeGreaterThan(0);
      expect(launches).toBeLessThan(a.running().length);
    }

    // Every agent's beats went through the shared statements and kept its node ready.
    const nodes = await getJson<{ hostname: string; status: string }[]>(api, "/api/v1/nodes");
    expect(nodes.filter((n) => n.hostname.startsWith("wide-")).every((n) => n.status === "ready")).toBe(true);
  });

  it("records the mesh endpoints of the tasks it starts; every agent gets them in its heartbeat reply", async () => {
    expect(
      (
        await send(api, "POST", "/api/v1/services", {
          name: "mesh",
          image: "busybox",
          replicas: 3,
          ports: [{ published: 18080, target: 80 }],
        })
      ).status,
    ).toBe(201);
    const tasks = await converged(api, "mesh", 3);
    const backends = (a: SimAgent) => a.ingress?.ports.find((p) => p.port === 18080)?.backends ?? [];
    await until("every agent to route 18080 to the three tasks", async () => agents.every((a) => backends(a).length === 3));
    const published = agents
      .flatMap((a) => a.running())
      .filter((c) => tasks.some((t) => t.id === c.labels["flotilla.task.id"]))
      .map((c) => Number(c.ports["80/tcp"][0].HostPort));
    expect(
      backends(agents[0])
        .map((b) => b.port)
        .sort(),
    ).toEqual(published.sort());
  });

  /** One more agent (labelled `role`) and a service of `replicas` placed on it alone, converged. */
  async function onOwnAgent(role: string, image: string, replicas: number, opts: Partial<SimAgentOptions>): Promise<SimAgent> {
    const [agent] = await simNodes(api, 1, { prefix: role, labels: { role }, ...opts });
    agents.push(agent);
    const res = await send(api, "POST", "/api/v1/services", {
      name: role,
      image,
      replicas,
      placement: { constraints: [`node.labels.role == ${role}`] },
    });
    expect(res.status).toBe(201);
    await converged(api, role, replicas);
    expect(agent.running()).toHaveLength(replicas);
    return agent;
  }

  it("launches one by one on an agent from before launch batches", async () => {
    const old = await onOwnAgent("old-agent", "busybox", 3, { launchBatches: false });
    expect(old.calls.filter((c) => c === "POST /containers/create")).toHaveLength(3);
  });

  it("pulls an image the agent lacks once, then launches the batch's containers", async () => {
    const bare = await onOwnAgent("fresh-image", "nginx", 4, { images: [] });
    expect(bare.calls.filter((c) => c === "POST /images/create")).toHaveLength(1);
    expect(bare.calls.filter((c) => c === "POST /containers/create")).toEqual([]);
  });
});
