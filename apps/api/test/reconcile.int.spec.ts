import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { start, type Running } from "../src/bootstrap";
import { PrismaService } from "../src/database/prisma.service";
import { ReconcileService } from "../src/services/reconcile.service";
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

function noSlotTwice(tasks: TaskJson[]): void {
  const slots = live(tasks).map((t) => t.slot);
  expect(new Set(slots).size).toBe(slots.length);
}

describe("reconcile worker", () => {
  let api: TestApi;
  let agents: SimAgent[];
  let restarted: Running | undefined;
  beforeAll(async () => {
    api = await startFastApi();
    agents = await simNodes(api, 4);
  });
  afterAll(async () => {
    await Promise.all((agents ?? []).map((a) => a.stop()));
    if (restarted) {
      await restarted.close();
      await api.db.drop();
    } else await api?.stop();
  });

  it("two reconciles running at once never over-place", async () => {
    const res = await send(api, "POST", "/api/v1/services", { name: "race", image: "busybox", replicas: 0 });
    const { id } = (await res.json()) as { id: string };
    await until("the create to be reconciled", async () => (await tasksOf(api, "race")).length === 0);
    // Change the spec behind the queue's back, then reconcile it from several callers at once.
    const prisma = api.running.app.get(PrismaService);
    const row = await prisma.service.findUniqueOrThrow({ where: { id } });
    await prisma.service.update({
      where: { id },
      data: { spec: { ...(row.spec as object), mode: { kind: "replicated", replicas: 7 } }, version: 2 },
    });
    const reconciler = api.running.app.get(ReconcileService);
    const outcomes = await Promise.all(Array.from({ length: 6 }, () => reconciler.reconcile(id)));
    const written = outcomes.filter((o) => o.outcome === "written");
    expect(written.length).toBeGreaterThanOrEqual(1);
    // The others planned from the same view and were refused at commit (then re-enqueued).
    expect(outcomes.reduce((n, o) => n + o.created, 0)).toBe(7);
    await converged(api, "race", 7);
    const all = await tasksOf(api, "race");
    // Every task ever created for the service is one of the 7: nothing was placed twice and
    // then stopped as a duplicate.
    expect(all.length).toBe(7);
    noSlotTwice(all);
    expect(runningContainers(agents).filter((c) => c.serviceId === id).length).toBe(7);
  });

  it("an update whose tasks fail rolls back by itself, installing the previous spec with the plan", async () => {
    const res = await send(api, "POST", "/api/v1/services", {
      name: "roll",
      image: "busybox",
      replicas: 2,
      env: { V: "1" },
      updateConfig: { parallelism: 1, delayMs: 0, monitorMs: 5000, failureAction: "rollback", maxFailureRatio: 0 },
    });
    const { id } = (await res.json()) as { id: string };
    await converged(api, "roll", 2);
    expect((await send(api, "PATCH", "/api/v1/services/roll", { env: { V: "2" } })).status).toBe(200);
    // The first task of the new spec starts, then crashes within the monitor period.
    const bad = await until("a task of the new spec running", async () =>
      (await tasksOf(api, "roll")).find((t) => t.specVersion === 2 && t.state === "RUNNING"),
    );
    agents.find((a) => a.opts.hostname === bad.nodeHostname)!.exit(bad.id, 1);
    const rolled = await until(
      "the rollback to finish",
      async () => {
        const s = await getJson<{
          taskVersion: number;
          spec: { env: Record<string, string> };
          previousSpec: { env: Record<string, string> };
        }>(api, "/api/v1/services/roll");
        const l = live(await tasksOf(api, "roll"));
        return s.taskVersion === 3 && l.length === 2 && l.every((t) => t.state === "RUNNING" && t.specVersion === 3) && s;
      },
      40_000,
    );
    expect(rolled.spec.env).toEqual({ V: "1" });
    expect(rolled.previousSpec.env).toEqual({ V: "2" });
    noSlotTwice(await tasksOf(api, "roll"));
    expect(runningContainers(agents).filter((c) => c.serviceId === id).length).toBe(2);
  });

  it("a restart of the API and worker in the middle of a scale converges once, without duplicates", async () => {
    const res = await send(api, "POST", "/api/v1/services", { name: "big", image: "busybox", replicas: 2 });
    const { id } = (await res.json()) as { id: string };
    await converged(api, "big", 2);
    expect((await send(api, "POST", "/api/v1/services/big/scale", { replicas: 24 })).status).toBe(200);
    // Stop while the scale is being worked on; start again on the same database, Redis and port.
    await new Promise((r) => setTimeout(r, 30));
    await api.running.close();
    const port = Number(new URL(api.url).port);
    restarted = await start({ ...api.config, port }, { logger: false });
    const again = { ...api, fetch: api.fetch } as TestApi;
    const tasks = await converged(again, "big", 24, 30_000);
    noSlotTwice(await tasksOf(again, "big"));
    expect(tasks.map((t) => t.slot).sort((a, b) => a! - b!)).toEqual(Array.from({ length: 24 }, (_, i) => i + 1));
    await until("exactly 24 containers", async () => runningContainers(agents).filter((c) => c.serviceId === id).length === 24);
    const containers = runningContainers(agents).filter((c) => c.serviceId === id);
    expect(new Set(containers.map((c) => c.slot)).size).toBe(24);
    const list = await getJson<{ name: string; running: number; desired: number }[]>(again, "/api/v1/services");
    expect(list.find((s) => s.name === "big")).toMatchObject({ running: 24, desired: 24 });
  });
});
