// `PATCH /api/v1/services/{id} {rebalance: true}` against the real API, Postgres, Redis and
// simulated agents: after a drained node returns, the service's tasks stay where they are until a
// rebalance moves the surplus, a batch at a time, back to 2/2/2; refusals name the field.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { TestApi } from "./support";
import type { SimAgent } from "../../../test/support/sim-agent";
import {
  converged,
  getJson,
  live,
  runningContainers,
  send,
  simNodes,
  startFastApi,
  tasksOf,
  until,
  type TaskJson,
} from "./services-support";

const spread = (tasks: TaskJson[]) => {
  const m: Record<string, number> = {};
  for (const t of live(tasks)) m[t.nodeHostname ?? "?"] = (m[t.nodeHostname ?? "?"] ?? 0) + 1;
  return m;
};

describe("rebalance", () => {
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

  it("restores 2/2/2 after a drained node returns, moving only the surplus", async () => {
    const res = await send(api, "POST", "/api/v1/services", { name: "web", image: "busybox", replicas: 6 });
    expect(res.status).toBe(201);
    const { id } = (await res.json()) as { id: string };
    await converged(api, "web", 6);
    expect(spread(await tasksOf(api, "web"))).toEqual({ "sim-1": 2, "sim-2": 2, "sim-3": 2 });
    expect((await send(api, "PATCH", "/api/v1/nodes/sim-3", { availability: "drain" })).status).toBe(200);
    await until("web off sim-3", async () => {
      const l = live(await tasksOf(api, "web"));
      return l.length === 6 && l.every((t) => t.state === "RUNNING" && t.nodeHostname !== "sim-3");
    });
    expect((await send(api, "PATCH", "/api/v1/nodes/sim-3", { availability: "active" })).status).toBe(200);
    const before = live(await tasksOf(api, "web"));
    expect(spread(before)).toEqual({ "sim-1": 3, "sim-2": 3 });

    const r = await send(api, "PATCH", "/api/v1/services/web", { rebalance: true });
    expect(r.status).toBe(200);
    const done = await until("the rebalance to complete", async () => {
      const s = await getJson<{ updateState: { status: string; moving?: string[]; message: string } | null }>(api, "/api/v1/services/web");
      return s.updateState?.status === "completed" && s.updateState;
    });
    expect(done.message).toBe("rebalance completed");
    expect(done.moving).toHaveLength(2);
    const after = await converged(api, "web", 6);
    expect(spread(after)).toEqual({ "sim-1": 2, "sim-2": 2, "sim-3": 2 });
    // The four tasks that were not moved kept running throughout.
    const kept = before.filter((t) => !done.moving!.includes(t.id)).map((t) => t.id);
    expect(kept).toHaveLength(4);
    for (const id of kept) expect(after.map((t) => t.id)).toContain(id);
    await until("6 containers", async () => runningContainers(agents).filter((c) => c.serviceId === id).length === 6);
  });

  it("refuses a rebalance with other changes, or of a global service, changing nothing", async () => {
    const before = await getJson<{ version: number }>(api, "/api/v1/services/web");
    const mixed = await send(api, "PATCH", "/api/v1/services/web", { rebalance: true, env: { A: "1" } });
    expect(mixed.status).toBe(400);
    expect(await mixed.json()).toMatchObject({ details: { field: "rebalance" } });
    expect((await getJson<{ version: number }>(api, "/api/v1/services/web")).version).toBe(before.version);
    expect((await send(api, "POST", "/api/v1/services", { name: "everywhere", image: "busybox", mode: { kind: "global" } })).status).toBe(
      201,
    );
    const global = await send(api, "PATCH", "/api/v1/services/everywhere", { rebalance: true });
    expect(global.status).toBe(400);
    expect((await global.json()) as { message: string }).toMatchObject({ message: expect.stringMatching(/global/) });
  });
});
