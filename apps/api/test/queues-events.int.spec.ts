import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Job } from "bullmq";
import { PrismaService } from "../src/database/prisma.service";
import { RedisConnections } from "../src/database/redis";
import { EventsService } from "../src/events/events.service";
import { JobHandlers } from "../src/queues/job-handlers";
import { QUEUE } from "../src/queues/queue-names";
import { QueuesService } from "../src/queues/queues.service";
import { startTestApi, type TestApi } from "./support";

async function until<T>(what: string, probe: () => Promise<T | undefined | false>, ms = 15_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await probe();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe("reconcile queue", () => {
  let api: TestApi;
  beforeAll(async () => {
    api = await startTestApi({ FLOTILLA_ROLE: "api" }); // producer only: jobs stay queued
  });
  afterAll(() => api?.stop());

  it("collapses duplicate reconcile requests for one service", async () => {
    const queues = api.running.app.get(QueuesService);
    for (let i = 0; i < 5; i++) await queues.enqueueReconcile("svc-a", `change ${i}`);
    await queues.enqueueReconcile("svc-b", "change");
    const waiting = await queues.queue(QUEUE.reconcile).getJobs(["waiting", "delayed"]);
    expect(waiting.map((j) => j.data.serviceId).sort()).toEqual(["svc-a", "svc-b"]);
  });

  it("repeats a provision request only once it finished", async () => {
    const queues = api.running.app.get(QueuesService);
    const a = await queues.enqueueProvision({ machineId: "m1", operation: "create" });
    const b = await queues.enqueueProvision({ machineId: "m1", operation: "create" });
    expect(a).toBe(b);
    expect(await queues.queue(QUEUE.provision).getJobCountByTypes("waiting")).toBe(1);
  });
});

describe("workers", () => {
  let api: TestApi;
  const seen: string[] = [];
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));

  beforeAll(async () => {
    api = await startTestApi({ FLOTILLA_ROLE: "all", FLOTILLA_SWEEP_INTERVAL_MS: "1000" });
    // The services module handles reconcile; this suite tests the queue machinery itself.
    api.running.app.get(JobHandlers).replace(QUEUE.reconcile, async (job: Job) => {
      seen.push(`${job.data.serviceId}:${job.data.reason}`);
      if (job.data.reason === "slow") await gate;
    });
  });
  afterAll(() => api?.stop());

  it("keeps exactly one follow-up when a service changes during its reconcile", async () => {
    const queues = api.running.app.get(QueuesService);
    await queues.enqueueReconcile("svc-x", "slow");
    await until("the slow job to start", async () => seen.includes("svc-x:slow"));
    for (let i = 0; i < 4; i++) await queues.enqueueReconcile("svc-x", `edit ${i}`);
    release();
    await until("the follow-up", async () => seen.some((s) => s.startsWith("svc-x:edit")));
    await new Promise((r) => setTimeout(r, 300));
    const followUps = seen.filter((s) => s.startsWith("svc-x:edit"));
    // Only the latest change survives; it runs once, after the slow job.
    expect(followUps).toEqual(["svc-x:edit 3"]);
  });

  it("sweeps: reconciles every service in the database periodically", async () => {
    const prisma = api.running.app.get(PrismaService);
    const svc = await prisma.service.create({ data: { name: "swept", spec: { image: "busybox" } } });
    await until("a sweep to reconcile the service", async () => seen.includes(`${svc.id}:sweep`));
  });
});

describe("event stream", () => {
  let api: TestApi;
  beforeAll(async () => {
    api = await startTestApi({ FLOTILLA_ROLE: "api" });
  });
  afterAll(() => api?.stop());

  async function readEvents(
    res: Response,
    count: number,
  ): Promise<{ id: string; kind: string; action: string; data: Record<string, unknown> }[]> {
    const reader = res.body!.getReader();
    const decoder = new TextDecoder();
    let buf = "";
    const out: { id: string; kind: string; action: string; data: Record<string, unknown> }[] = [];
    while (out.length < count) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += decoder.decode(value, { stream: true });
      let at;
      while ((at = buf.indexOf("\n\n")) >= 0) {
        const frame = buf.slice(0, at);
        buf = buf.slice(at + 2);
        const data = frame.split("\n").find((l) => l.startsWith("data: "));
        if (data) out.push(JSON.parse(data.slice(6)));
      }
    }
    await reader.cancel();
    return out;
  }

  it("needs a token", async () => {
    expect((await api.fetch("/api/v1/events", { token: null })).status).toBe(401);
  });

  it("streams state changes live, as they are recorded", async () => {
    const res = await api.fetch("/api/v1/events?kind=token");
    expect(res.headers.get("content-type")).toMatch(/text\/event-stream/);
    const reading = readEvents(res, 1);
    await new Promise((r) => setTimeout(r, 200));
    await api.fetch("/api/v1/tokens", { method: "POST", body: JSON.stringify({ name: "live" }) });
    const [event] = await reading;
    expect(event).toMatchObject({ kind: "token", action: "create", data: { name: "live" } });
  });

  it("replays from an id, then continues live without duplicates", async () => {
    const events = api.running.app.get(EventsService);
    const before = await events.latestId();
    await events.emit({ kind: "probe", action: "one" }, { kind: "probe", action: "two" });
    const res = await api.fetch(`/api/v1/events?kind=probe&since=${before}`);
    const reading = readEvents(res, 3);
    await new Promise((r) => setTimeout(r, 200));
    await events.emit({ kind: "probe", action: "three" });
    expect((await reading).map((e) => e.action)).toEqual(["one", "two", "three"]);
  });

  it("keeps streaming after a non-JSON or non-event message on the events channel", async () => {
    const events = api.running.app.get(EventsService);
    const redis = api.running.app.get(RedisConnections).client;
    const res = await api.fetch("/api/v1/events?kind=probe2");
    const reading = readEvents(res, 1);
    await new Promise((r) => setTimeout(r, 200));
    const channel = `${api.config.queuePrefix}:events`;
    for (const hostile of ["not json {", "null", "42", '[{"id":1}]', '{"kind":"probe2"}']) {
      expect(await redis.publish(channel, hostile)).toBeGreaterThan(0);
    }
    await events.emit({ kind: "probe2", action: "after" });
    expect((await reading).map((e) => e.action)).toEqual(["after"]);
    expect((await api.fetch("/api/v1/health")).status).toBe(200);
  });

  it("rejects a malformed since with 400", async () => {
    const res = await api.fetch("/api/v1/events?since=yesterday");
    expect(res.status).toBe(400);
    expect(await res.json()).toMatchObject({ error: "invalid", details: { field: "since" } });
  });
});

describe("roles", () => {
  it("runs a worker-only process without HTTP", async () => {
    const api = await startTestApi({ FLOTILLA_ROLE: "api" });
    const { start } = await import("../src/bootstrap");
    const worker = await start({ ...api.config, role: "worker" }, { logger: false });
    try {
      expect(worker.url).toBeUndefined();
      const schedulers = await worker.app.get(QueuesService).queue(QUEUE.sweep).getJobSchedulers();
      expect(schedulers.map((s) => s.key)).toContain("sweep");
    } finally {
      await worker.close();
      await api.stop();
    }
  });
});
