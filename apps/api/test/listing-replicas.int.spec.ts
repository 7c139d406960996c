// Listings kept per API process (common/listing-views.ts) across replicas on one database and
// Redis: a write is shown at once by the replica that made it, by the others as its event
// arrives; a change whose event a replica missed is shown once its subscription comes back, and
// a change without any event within FLOTILLA_LISTING_MAX_AGE_MS. Replicas A (api + workers) and
// B keep copies for 60 s, so only an event or a resync can explain what B shows; C keeps the
// default max age. No agents: nothing changes unless the test changes it.
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import IORedis from "ioredis";
import pg from "pg";
import { startTestApi, type TestApi } from "./support";
import { loadConfig } from "../src/config/config";
import { start, type Running } from "../src/bootstrap";
import { ListingViews } from "../src/common/listing-views";
import { until } from "../../../test/support/until";

interface Replica {
  running: Running;
  fetch(path: string, init?: RequestInit): Promise<Response>;
}

let a: TestApi;
let b: Replica;
let c: Replica;
let db: pg.Client;
let redis: IORedis;

const LONG = "60000";

async function replica(maxAgeMs?: string): Promise<Replica> {
  const config = loadConfig({
    DATABASE_URL: a.db.url,
    REDIS_URL: inject("redisUrl"),
    FLOTILLA_PORT: "0",
    FLOTILLA_ROLE: "api",
    FLOTILLA_CONFIG_DIR: a.config.configDir,
    FLOTILLA_QUEUE_PREFIX: a.config.queuePrefix,
    FLOTILLA_LOG_LEVEL: "error",
    ...(maxAgeMs ? { FLOTILLA_LISTING_MAX_AGE_MS: maxAgeMs } : {}),
  });
  const running = await start(config, { logger: false });
  return {
    running,
    fetch: (path, init = {}) =>
      fetch(running.url! + path, {
        ...init,
        headers: {
          authorization: `Bearer ${a.token}`,
          ...(init.body ? { "content-type": "application/json" } : {}),
          ...(init.headers as Record<string, string>),
        },
      }),
  };
}

const json = async <T>(r: Replica | TestApi, path: string): Promise<T> => {
  const res = await r.fetch(path);
  expect(res.status).toBe(200);
  return (await res.json()) as T;
};
type Svc = { name: string; desired: number; spec: { labels: Record<string, string> } };
const service = async (r: Replica | TestApi, name: string) => (await json<Svc[]>(r, "/api/v1/services")).find((s) => s.name === name);
const copies = (r: Replica | TestApi) => r.running.app.get(ListingViews).size;

/** Waits until `r` keeps a copy of the services listing (its subscription is confirmed). */
async function holding(r: Replica | TestApi): Promise<void> {
  await until("a copy of the services listing", async () => {
    await r.fetch("/api/v1/services");
    return copies(r) > 0;
  });
}

describe("listings across API replicas", () => {
  beforeAll(async () => {
    a = await startTestApi({ FLOTILLA_ROLE: "all", FLOTILLA_LISTING_MAX_AGE_MS: LONG, FLOTILLA_LOG_LEVEL: "error" });
    b = await replica(LONG);
    c = await replica();
    db = new pg.Client({ connectionString: a.db.url });
    await db.connect();
    redis = new IORedis(inject("redisUrl"), { maxRetriesPerRequest: 1 });
    for (const name of ["lr-one", "lr-two"]) {
      const res = await a.fetch("/api/v1/services", { method: "POST", body: JSON.stringify({ name, image: "busybox", replicas: 0 }) });
      expect(res.status).toBe(201);
    }
  });

  afterAll(async () => {
    redis?.disconnect();
    await db?.end();
    await c?.running.close();
    await b?.running.close();
    await a?.stop();
  });

  it("shows a write at once on the replica that made it, and on another as its event arrives", async () => {
    await holding(a);
    await holding(b);
    const patch = await a.fetch("/api/v1/services/lr-one", { method: "PATCH", body: JSON.stringify({ labels: { step: "1" } }) });
    expect(patch.status).toBe(200);
    // A: no wait at all (the copy was retired before the PATCH answered).
    expect((await service(a, "lr-one"))!.spec.labels).toEqual({ step: "1" });
    // B: its copy lives 60 s; only the event retires it.
    await until("B to show the change", async () => (await service(b, "lr-one"))!.spec.labels.step === "1");
    // The same bytes on both: one ETag whichever replica a load balancer picks.
    const [ea, eb] = await Promise.all([a.fetch("/api/v1/services"), b.fetch("/api/v1/services")]);
    expect(ea.headers.get("etag")).toBe(eb.headers.get("etag"));
    expect((await b.fetch("/api/v1/services", { headers: { "if-none-match": ea.headers.get("etag")! } })).status).toBe(304);
  });

  it("shows a write through B on A; task listing filters answer alike on both", async () => {
    await holding(a);
    expect(
      await b.fetch("/api/v1/services/lr-two", { method: "PATCH", body: JSON.stringify({ labels: { via: "b" } }) }).then((r) => r.status),
    ).toBe(200);
    expect((await service(b, "lr-two"))!.spec.labels).toEqual({ via: "b" });
    await until("A to show B's write", async () => (await service(a, "lr-two"))!.spec.labels.via === "b");
    // Filters answer as before: an unknown service is a 404 naming it, whichever replica.
    for (const r of [a, b]) {
      const res = await r.fetch("/api/v1/tasks?service=lr-nope");
      expect(res.status).toBe(404);
      expect(((await res.json()) as { message: string }).message).toMatch(/lr-nope/);
    }
  });

  it("a change whose event B missed shows once B's subscription comes back", async () => {
    await holding(b);
    // A change written behind every replica's back: as if its event had been lost.
    await db.query(`UPDATE "Service" SET spec = jsonb_set(spec, '{labels}', '{"missed":"1"}') WHERE name = 'lr-one'`);
    // B keeps its copy (60 s, no event)...
    expect((await service(b, "lr-one"))!.spec.labels).toEqual({ step: "1" });
    // ...until its subscriber's connection drops and comes back.
    const clients = ((await redis.call("CLIENT", "LIST", "TYPE", "pubsub")) as string)
      .split("\n")
      .filter((l) => l.includes(` name=${a.config.queuePrefix}:events:subscriber `));
    expect(clients.length).toBeGreaterThan(0);
    for (const l of clients) await redis.call("CLIENT", "KILL", "ID", /\bid=(\d+)/.exec(l)![1]!);
    await until("B to read lr-one again", async () => (await service(b, "lr-one"))!.spec.labels.missed === "1");
    // And it keeps copies again once the subscription is confirmed.
    await holding(b);
  });

  it("a change without any event shows within the default max age (C)", async () => {
    await holding(c);
    await db.query(`UPDATE "Service" SET spec = jsonb_set(spec, '{labels}', '{"quiet":"1"}') WHERE name = 'lr-two'`);
    await until("C to show the quiet change", async () => (await service(c, "lr-two"))!.spec.labels.quiet === "1");
  });
});
