// The API process down while a worker keeps running: agents cannot report, and the silence is
// the control plane's, not the nodes'. No node may be declared down for it, however long it
// lasts; once the API is back, every agent gets a full window again.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { start, type Running } from "../src/bootstrap";
import { PrismaService } from "../src/database/prisma.service";
import type { TestApi } from "./support";
import type { SimAgent } from "../../../test/support/sim-agent";
import { converged, send, simNodes, startFastApi, until } from "./services-support";

describe("API down, worker up", () => {
  let api: TestApi;
  let worker: Running;
  let again: Running | undefined;
  let agents: SimAgent[];
  beforeAll(async () => {
    api = await startFastApi({ FLOTILLA_ROLE: "api" });
    worker = await start({ ...api.config, role: "worker" }, { logger: false });
    agents = await simNodes(api, 3);
  });
  afterAll(async () => {
    await Promise.all((agents ?? []).map((a) => a.stop()));
    await again?.close();
    await worker?.close();
    await api?.db.drop();
  });

  it("declares no node down while no API process takes heartbeats", async () => {
    await send(api, "POST", "/api/v1/services", { name: "calm", image: "busybox", replicas: 3 });
    const before = await converged(api, "calm", 3);
    const prisma = worker.app.get(PrismaService);
    const since = (await prisma.event.findFirst({ orderBy: { id: "desc" } }))!.id;

    await api.running.close();
    const failures = agents.map((a) => a.heartbeatFailures);
    // Many down windows (3 beats each) without an API.
    await until(
      "heartbeats to fail for four down windows",
      async () => agents.every((a, i) => a.heartbeatFailures >= failures[i] + 12),
      60_000,
    );
    expect(await prisma.event.count({ where: { id: { gt: since }, kind: "node", action: "down" } })).toBe(0);

    again = await start({ ...api.config, role: "api" }, { logger: false });
    for (const a of agents) a.opts.apiUrl = again.url!;
    const ok = agents.map((a) => a.heartbeatsOk);
    await until(
      "heartbeats to be taken again for several windows",
      async () => agents.every((a, i) => a.heartbeatsOk >= ok[i] + 12),
      60_000,
    );
    expect(await prisma.event.count({ where: { id: { gt: since }, kind: "node", action: "down" } })).toBe(0);
    const tasks = await prisma.task.findMany({ where: { service: { name: "calm" } } });
    expect(tasks.map((t) => [t.id, t.state]).sort()).toEqual(before.map((t) => [t.id, "RUNNING"]).sort());
    const res = await fetch(`${again.url}/api/v1/nodes`, { headers: { authorization: `Bearer ${api.token}` } });
    expect(((await res.json()) as { status: string }[]).map((n) => n.status)).toEqual(["ready", "ready", "ready"]);
  });
});
