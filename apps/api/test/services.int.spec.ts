import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { TestApi } from "./support";
import type { SimAgent } from "../../../test/support/sim-agent";
import { converged, getJson, live, runningContainers, send, simNodes, startFastApi, tasksOf, until } from "./services-support";

describe("services API", () => {
  let api: TestApi;
  let agents: SimAgent[];
  beforeAll(async () => {
    api = await startFastApi();
    agents = await simNodes(api, 3, { labelsOf: (i) => ({ zone: i === 3 ? "b" : "a" }) });
  });
  afterAll(async () => {
    await Promise.all((agents ?? []).map((a) => a.stop()));
    await api?.stop();
  });

  it("registers nodes through heartbeats", async () => {
    const nodes = await getJson<{ hostname: string; status: string; labels: Record<string, string> }[]>(api, "/api/v1/nodes");
    expect(nodes.map((n) => [n.hostname, n.status, n.labels.zone])).toEqual([
      ["sim-1", "ready", "a"],
      ["sim-2", "ready", "a"],
      ["sim-3", "ready", "b"],
    ]);
  });

  it("documents the endpoints in OpenAPI", async () => {
    const doc = (await (await api.fetch("/api/docs-json")).json()) as {
      paths: Record<string, Record<string, { tags?: string[]; requestBody?: unknown }>>;
    };
    for (const p of [
      "/api/v1/services",
      "/api/v1/services/{id}",
      "/api/v1/services/{id}/scale",
      "/api/v1/services/{id}/rollback",
      "/api/v1/services/{id}/logs",
      "/api/v1/tasks",
      "/api/v1/nodes",
      "/api/v1/nodes/{id}",
      "/api/v1/nodes/heartbeat",
    ]) {
      expect(doc.paths[p], p).toBeDefined();
    }
    expect(doc.paths["/api/v1/services"].post.requestBody).toBeDefined();
    expect(doc.paths["/api/v1/nodes/heartbeat"].post.tags).toEqual(["nodes"]);
  });

  it("rejects invalid specs naming the field", async () => {
    const cases: [unknown, string][] = [
      [{ name: "bad name!", image: "busybox" }, "name"],
      [{ name: "x", image: "busybox", replicas: -1 }, "replicas"],
      [{ name: "x", image: "busybox", ports: [{ published: 70000, target: 80 }] }, "ports[0].published"],
      [{ name: "x", image: "busybox", placement: { constraints: ["node.labels.zone=a"] } }, "placement.constraints[0]"],
      [{ name: "x" }, "image"],
      [
        { name: "x", image: "busybox", resources: { reservations: { memoryBytes: 2048 }, limits: { memoryBytes: 1024 } } },
        "resources.reservations.memoryBytes",
      ],
    ];
    for (const [body, field] of cases) {
      const res = await send(api, "POST", "/api/v1/services", body);
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect((await res.json()).details.field).toBe(field);
    }
  });

  it("creates a service, refuses a duplicate name with 409, and runs its replicas across nodes", async () => {
    const res = await send(api, "POST", "/api/v1/services", { name: "web", image: "busybox", replicas: 3, env: { A: "1" } });
    expect(res.status).toBe(201);
    const created = await res.json();
    expect(created).toMatchObject({ name: "web", version: 1, taskVersion: 1, desired: 3, mode: "replicated" });
    const dup = await send(api, "POST", "/api/v1/services", { name: "web", image: "nginx" });
    expect(dup.status).toBe(409);
    expect(await dup.json()).toMatchObject({ error: "conflict", details: { field: "name" } });

    const tasks = await converged(api, "web", 3);
    expect(tasks.map((t) => t.slot).sort()).toEqual([1, 2, 3]);
    // Spread: fewest tasks of the service first, so one per node.
    expect(new Set(tasks.map((t) => t.nodeId)).size).toBe(3);
    const containers = runningContainers(agents).filter((c) => c.serviceId === created.id);
    expect(containers.map((c) => c.taskId).sort()).toEqual(tasks.map((t) => t.id).sort());
    const list = await getJson<{ name: string; running: number; desired: number }[]>(api, "/api/v1/services");
    expect(list).toEqual([expect.objectContaining({ name: "web", running: 3, desired: 3 })]);
    const inspect = await getJson<{ id: string; spec: { env: Record<string, string> } }>(api, "/api/v1/services/web");
    expect(inspect.id).toBe(created.id);
    expect(inspect.spec.env).toEqual({ A: "1" });
  });

  it("scales 3 → 6 → 2 keeping the lowest slots and their tasks", async () => {
    const before = await converged(api, "web", 3);
    let res = await send(api, "POST", "/api/v1/services/web/scale", { replicas: 6 });
    expect(res.status).toBe(200);
    expect((await res.json()).taskVersion).toBe(1);
    const six = await converged(api, "web", 6);
    expect(six.map((t) => t.slot).sort()).toEqual([1, 2, 3, 4, 5, 6]);
    // Scaling replaces nothing.
    for (const t of before) expect(six.map((x) => x.id)).toContain(t.id);
    res = await send(api, "PATCH", "/api/v1/services/web", { replicas: 2 });
    expect(res.status).toBe(200);
    const two = await converged(api, "web", 2);
    expect(two.map((t) => t.slot).sort()).toEqual([1, 2]);
    const { id } = await getJson<{ id: string }>(api, "/api/v1/services/web");
    await until("removed containers to be stopped", async () => runningContainers(agents).filter((c) => c.serviceId === id).length === 2);
    const stopped = (await tasksOf(api, "web")).filter((t) => t.desiredState === "shutdown");
    expect(stopped.length).toBe(4);
    await until("stopped tasks to be SHUTDOWN", async () =>
      (await tasksOf(api, "web")).filter((t) => t.desiredState === "shutdown").every((t) => t.state === "SHUTDOWN"),
    );
  });

  it("an image change bumps taskVersion and replaces tasks; rollback returns to the previous spec", async () => {
    const res = await send(api, "PATCH", "/api/v1/services/web", {
      image: "nginx",
      updateConfig: { parallelism: 2, monitorMs: 0 },
      rollbackConfig: { monitorMs: 0 },
    });
    const updated = await res.json();
    expect(updated).toMatchObject({ version: 4, taskVersion: 2, spec: { image: "nginx", updateConfig: { parallelism: 2 } } });
    await until("tasks at taskVersion 2", async () => {
      const l = live(await tasksOf(api, "web"));
      return l.length === 2 && l.every((t) => t.specVersion === 2 && t.state === "RUNNING");
    });
    const rb = await send(api, "POST", "/api/v1/services/web/rollback");
    expect(rb.status).toBe(200);
    expect((await rb.json()).spec.image).toBe("busybox");
    await until("tasks back on busybox", async () => {
      const l = live(await tasksOf(api, "web"));
      return l.length === 2 && l.every((t) => t.specVersion === 3 && t.state === "RUNNING");
    });
    // A patch that changes nothing is not a new version.
    const same = await (await send(api, "PATCH", "/api/v1/services/web", { replicas: 2, image: "busybox" })).json();
    expect(same.version).toBe(5);
  });

  it("a rolling update with a monitor period completes on its own", async () => {
    const res = await send(api, "PATCH", "/api/v1/services/web", { env: { A: "2" }, updateConfig: { parallelism: 1, monitorMs: 3000 } });
    expect(res.status).toBe(200);
    const done = await until(
      "the update to complete",
      async () => {
        const s = await getJson<{ taskVersion: number; updateState: { status: string; message: string } | null }>(
          api,
          "/api/v1/services/web",
        );
        return s.updateState?.status === "completed" && s;
      },
      40_000,
    );
    const l = live(await tasksOf(api, "web"));
    expect(l.every((t) => t.specVersion === done.taskVersion && t.state === "RUNNING")).toBe(true);
  });

  it("global mode runs one task per eligible node", async () => {
    const res = await send(api, "POST", "/api/v1/services", {
      name: "agent",
      image: "busybox",
      mode: { kind: "global" },
      placement: { constraints: ["node.labels.zone==a"] },
    });
    expect(res.status).toBe(201);
    const tasks = await until("global tasks", async () => {
      const l = live(await tasksOf(api, "agent"));
      return l.length === 2 && l.every((t) => t.state === "RUNNING") ? l : undefined;
    });
    expect(tasks.map((t) => t.nodeHostname).sort()).toEqual(["sim-1", "sim-2"]);
    expect((await send(api, "POST", "/api/v1/services/agent/scale", { replicas: 3 })).status).toBe(400);
  });

  it("leaves a task PENDING with the scheduler's reason when nothing fits", async () => {
    const res = await send(api, "POST", "/api/v1/services", {
      name: "huge",
      image: "busybox",
      resources: { reservations: { memoryBytes: 64 * 1024 ** 3 } },
    });
    expect(res.status).toBe(201);
    const [t] = await until("a pending task with a reason", async () => {
      const l = live(await tasksOf(api, "huge"));
      return l.length === 1 && l[0].state === "PENDING" && l[0].message ? l : undefined;
    });
    expect(t.message).toBe("no suitable node (insufficient memory on 3 nodes)");
  });

  it("retries pending tasks when capacity arrives, and gives a new node its global tasks", async () => {
    const [big] = await simNodes(api, 1, { prefix: "big", memoryBytes: 128 * 1024 ** 3, labels: { zone: "a" } });
    agents.push(big);
    const [t] = await converged(api, "huge", 1);
    expect(t.nodeHostname).toBe("big-1");
    await until("a global task on the new node", async () =>
      live(await tasksOf(api, "agent")).some((x) => x.nodeHostname === "big-1" && x.state === "RUNNING"),
    );
  });

  it("drain moves tasks off a node; active brings it back into use", async () => {
    await converged(api, "web", 2);
    const onSim1 = live(await tasksOf(api, "web")).filter((t) => t.nodeHostname === "sim-1");
    const res = await send(api, "PATCH", "/api/v1/nodes/sim-1", { availability: "drain", labelAdd: { disk: "ssd" } });
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ availability: "drain", labels: { zone: "a", disk: "ssd" } });
    const after = await until("web off sim-1", async () => {
      const l = live(await tasksOf(api, "web"));
      return l.length === 2 && l.every((t) => t.state === "RUNNING" && t.nodeHostname !== "sim-1") ? l : undefined;
    });
    for (const t of onSim1) expect(after.map((x) => x.id)).not.toContain(t.id);
    await until("no web container left on sim-1", async () =>
      agents[0]
        .running()
        .every((c) => c.labels["flotilla.service.id"] !== after[0].id && !after.some((t) => t.id === c.labels["flotilla.task.id"])),
    );
    expect((await send(api, "PATCH", "/api/v1/nodes/sim-1", { availability: "active", labelRm: ["disk"] })).status).toBe(200);
    expect((await send(api, "DELETE", "/api/v1/nodes/sim-1")).status).toBe(409);
  });

  it("merges the containers' logs prefixed by task", async () => {
    const res = await api.fetch("/api/v1/services/web/logs");
    expect(res.status).toBe(200);
    const text = await res.text();
    expect(text).toMatch(/^web\.1@sim-\d \| hello from web\.1\./m);
    expect(text).toMatch(/^web\.2@sim-\d \| busybox:latest started$/m);
  });

  it("gives a published port to one service only, even when two race for it", async () => {
    const bodies = ["a", "b", "c", "d"].map((n) => ({ name: `race-${n}`, image: "busybox", ports: [{ published: 7070, target: 80 }] }));
    const results = await Promise.all(bodies.map((b) => send(api, "POST", "/api/v1/services", b)));
    expect(results.map((r) => r.status).sort()).toEqual([201, 409, 409, 409]);
    const winner = bodies[results.findIndex((r) => r.status === 201)].name;
    const loser = await results.find((r) => r.status === 409)!.json();
    expect(loser).toMatchObject({ error: "conflict", details: { field: "ports[0].published", service: winner } });
    expect(loser.message).toBe(`port 7070/tcp is already published by service "${winner}" on every node (ingress mode)`);

    // An update onto a taken port changes nothing; the service's own port is no clash.
    const other = await (
      await send(api, "POST", "/api/v1/services", {
        name: "other",
        image: "busybox",
        ports: [{ published: 7071, target: 80, mode: "host" }],
      })
    ).json();
    const up = await send(api, "PATCH", "/api/v1/services/other", { ports: [{ published: 7070, target: 80, mode: "host" }] });
    expect(up.status).toBe(409);
    expect(await getJson(api, "/api/v1/services/other")).toMatchObject({
      version: other.version,
      spec: { ports: [{ published: 7071, mode: "host" }] },
    });
    expect((await send(api, "PATCH", "/api/v1/services/other", { ports: [{ published: 7071, target: 81, mode: "host" }] })).status).toBe(
      200,
    );
    for (const name of [winner, "other"]) expect((await send(api, "DELETE", `/api/v1/services/${name}`)).status).toBe(204);
  });

  it("removes a service and stops its containers", async () => {
    const svc = await getJson<{ id: string }>(api, "/api/v1/services/web");
    expect((await send(api, "DELETE", "/api/v1/services/web")).status).toBe(204);
    expect((await api.fetch("/api/v1/services/web")).status).toBe(404);
    await until("web containers gone", async () => runningContainers(agents).every((c) => c.serviceId !== svc.id));
  });
});
