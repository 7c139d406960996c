import { afterAll, beforeAll, describe, expect, it } from "vitest";
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
});
