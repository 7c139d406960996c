import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { liveCountsWithout } from "@flotilla/core";
import { PrismaService } from "../src/database/prisma.service";
import { ReconcileRepository } from "../src/services/reconcile.repository";
import { ReconcileService } from "../src/services/reconcile.service";
import type { TestApi } from "./support";
import type { SimAgent } from "../../../test/support/sim-agent";
import { converged, getJson, send, simNodes, startFastApi, tasksOf, until } from "./services-support";

const GIB = 1024 ** 3;

// A reconcile counts the other services' tasks (the largest read it makes) only when it has
// tasks to place, and a placement still sees what those tasks reserve.
describe("reconcile: the other services' live counts", () => {
  let api: TestApi;
  let agents: SimAgent[];
  let countReads = 0;
  beforeAll(async () => {
    api = await startFastApi();
    agents = await simNodes(api, 2, { memoryBytes: 8 * GIB });
    const repo = api.running.app.get(ReconcileRepository);
    const withCounts = repo.withCounts.bind(repo);
    repo.withCounts = (view) => {
      countReads++;
      return withCounts(view);
    };
  });
  afterAll(async () => {
    await Promise.all((agents ?? []).map((a) => a.stop()));
    await api?.stop();
  });

  it("are read to place, and hold the placement to what the other services reserve", async () => {
    const reserve = { reservations: { memoryBytes: 6 * GIB } };
    expect((await send(api, "POST", "/api/v1/services", { name: "hog", image: "busybox", replicas: 2, resources: reserve })).status).toBe(
      201,
    );
    await converged(api, "hog", 2);
    const before = countReads;
    expect(
      (await send(api, "POST", "/api/v1/services", { name: "squeeze", image: "busybox", replicas: 1, resources: reserve })).status,
    ).toBe(201);
    // Each node has 8 GiB and hog holds 6 of them: squeeze's task cannot be placed.
    const pending = await until("squeeze's task to be left pending", async () => {
      const tasks = await tasksOf(api, "squeeze");
      return tasks.length === 1 && tasks[0]!.state === "PENDING" && tasks[0]!.message ? tasks[0] : undefined;
    });
    expect(pending.message).toMatch(/memory/i);
    expect(countReads).toBeGreaterThan(before);
  });

  it("are not read for a service that has nothing to place", async () => {
    const hog = (await getJson<{ id: string; name: string }[]>(api, "/api/v1/services")).find((s) => s.name === "hog")!;
    const before = countReads;
    const outcome = await api.running.app.get(ReconcileService).reconcile(hog.id);
    expect(outcome.outcome).toBe("unchanged");
    expect(countReads).toBe(before);
  });

  it("count each live task of the other services once, on its node, as a plain count of the tasks does", async () => {
    expect((await send(api, "POST", "/api/v1/services", { name: "spread", image: "busybox", replicas: 5 })).status).toBe(201);
    await converged(api, "spread", 5);
    const services = await getJson<{ id: string; name: string }[]>(api, "/api/v1/services");
    const squeeze = services.find((s) => s.name === "squeeze")!;
    const rows = await api.running.app.get(PrismaService).sql.query<{ nodeId: string; serviceId: string; n: number }>(
      `SELECT "nodeId"::text AS "nodeId", "serviceId"::text AS "serviceId", count(*)::int AS n FROM "Task"
       WHERE "nodeId" IS NOT NULL AND "desiredState" = 'RUNNING' AND state IN ('NEW', 'PENDING', 'ASSIGNED', 'ACCEPTED', 'PREPARING', 'STARTING', 'RUNNING')
       GROUP BY 1, 2`,
    );
    const counted = new Map<string, Map<string, number>>();
    for (const r of rows) counted.set(r.nodeId, (counted.get(r.nodeId) ?? new Map()).set(r.serviceId, r.n));
    expect(rows.reduce((sum, r) => sum + r.n, 0)).toBe(7);
    const repo = api.running.app.get(ReconcileRepository);
    const view = (await repo.load(squeeze.id))!;
    expect((await repo.withCounts(view)).others).toEqual(liveCountsWithout(counted, squeeze.id));
  });
});
