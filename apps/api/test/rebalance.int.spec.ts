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

  it("rebalances a service whose policy is auto when a node comes back, and leaves a manual one where it is", async () => {
    for (const name of ["web", "everywhere"]) expect((await send(api, "DELETE", `/api/v1/services/${name}`)).status).toBe(204);
    const created = await send(api, "POST", "/api/v1/services", { name: "auto", image: "busybox", replicas: 6, rebalancePolicy: "auto" });
    expect(created.status).toBe(201);
    expect((await send(api, "POST", "/api/v1/services", { name: "manual", image: "busybox", replicas: 3 })).status).toBe(201);
    await converged(api, "auto", 6);
    await converged(api, "manual", 3);
    expect(spread(await tasksOf(api, "auto"))).toEqual({ "sim-1": 2, "sim-2": 2, "sim-3": 2 });

    // sim-3 stops beating: it is declared down and its tasks are replaced on the other two.
    agents[2].pauseHeartbeats();
    await until(
      "both services off sim-3",
      async () => {
        const [a, m] = [live(await tasksOf(api, "auto")), live(await tasksOf(api, "manual"))];
        return a.length === 6 && m.length === 3 && [...a, ...m].every((t) => t.state === "RUNNING" && t.nodeHostname !== "sim-3");
      },
      30_000,
    );
    const manualBefore = live(await tasksOf(api, "manual")).map((t) => t.id);
    agents[2].resumeHeartbeats();
    // Back: only the auto service spreads onto it again, through a rebalance it did not ask for.
    const back = await until(
      "auto back to 2/2/2",
      async () => {
        const l = live(await tasksOf(api, "auto"));
        const m = spread(l);
        return l.length === 6 && l.every((t) => t.state === "RUNNING") && m["sim-3"] === 2 && m["sim-1"] === 2 && l;
      },
      30_000,
    );
    expect(spread(back)).toEqual({ "sim-1": 2, "sim-2": 2, "sim-3": 2 });
    const auto = await until("the automatic rebalance to complete", async () => {
      const s = await getJson<{ updateState: { status: string; message: string } | null; spec: { rebalancePolicy: string } }>(
        api,
        "/api/v1/services/auto",
      );
      return s.updateState?.status === "completed" && s;
    });
    expect(auto.spec.rebalancePolicy).toBe("auto");
    expect(auto.updateState?.message).toBe("rebalance completed");
    const manualAfter = live(await tasksOf(api, "manual"));
    expect(manualAfter.map((t) => t.id).sort()).toEqual(manualBefore.sort());
    expect(manualAfter.every((t) => t.nodeHostname !== "sim-3")).toBe(true);
  });

  it("refuses an unknown rebalance policy, and auto on a global service, naming the field", async () => {
    const bad = await send(api, "POST", "/api/v1/services", { name: "x", image: "busybox", rebalancePolicy: "sometimes" });
    expect(bad.status).toBe(400);
    expect(JSON.stringify(await bad.json())).toContain("rebalancePolicy");
    const global = await send(api, "POST", "/api/v1/services", {
      name: "g",
      image: "busybox",
      mode: { kind: "global" },
      rebalancePolicy: "auto",
    });
    expect(global.status).toBe(400);
    expect(await global.json()).toMatchObject({ details: { field: "rebalancePolicy" } });
    expect((await send(api, "GET", "/api/v1/services/g")).status).toBe(404);
  });
});
