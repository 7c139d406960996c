// The listings each API process keeps (apps/api/src/common/listing-views.ts), across separate OS
// processes of the built control plane: two `api` processes (A, B) and one `worker` on the test
// stack's Postgres and Redis, one simulated node, clients over real HTTP. A and B keep copies for
// FLOTILLA_LISTING_MAX_AGE_MS = 60 s, so within the 10 s deadlines here only an event from another
// process, or the resync after B's subscription broke, can explain what B shows. Token checks
// are cached per process (TOKEN_CACHE_TTL_MS): a revoke on A must hold on B within 1 s.
import type { NodeView, ServiceView, TaskView } from "@flotilla/api-types";
import IORedis from "ioredis";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { startApiReplicas, type ApiReplicas } from "../support/api-replicas";
import { redisClientIdsOf } from "../support/process-sockets";
import { SimAgent } from "../support/sim-agent";
import { until } from "../support/until";

const A = 0;
const B = 1;
const MAX_AGE_MS = 60_000;
// Well under MAX_AGE_MS: a copy outliving it would be retired by age, proving nothing.
const DEADLINE_MS = 10_000;
const HEARTBEAT_MS = 1_000;
// Issue 17: a revoked token is refused by every replica within 1 s (the token cache's TTL).
const REVOKE_BOUND_MS = 1_000;
const SERVICES = "/api/v1/services";
const NODES = "/api/v1/nodes";
const TASKS = "/api/v1/tasks?service=lp-web";

describe("listings across separate control-plane processes (api A, api B, worker)", () => {
  let cp: ApiReplicas;
  let agent: SimAgent | undefined;
  let redis: IORedis;
  let db: pg.Client;
  /** How long B took to show another process's change, per case (printed at the end). */
  const delays: Record<string, number> = {};

  const call = (i: number, method: string, path: string, body?: unknown, headers: Record<string, string> = {}, token = cp.token) =>
    fetch(cp.replicas[i]!.url + path, {
      method,
      headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { "content-type": "application/json" }), ...headers },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
  const send = async (i: number, method: string, path: string, body?: unknown) => {
    const res = await call(i, method, path, body);
    if (!res.ok) throw new Error(`${method} ${path} on ${"AB"[i]}: ${res.status} ${await res.text()}`);
    return res;
  };
  const get = async <T>(i: number, path: string): Promise<{ body: T; etag: string }> => {
    const res = await call(i, "GET", path);
    expect(res.status, `GET ${path} on ${"AB"[i]}`).toBe(200);
    return { body: (await res.json()) as T, etag: res.headers.get("etag")! };
  };
  const service = async (i: number, name: string) => (await get<ServiceView[]>(i, SERVICES)).body.find((s) => s.name === name);
  const running = async (i: number, n: number) =>
    (await get<TaskView[]>(i, TASKS)).body.filter((t) => t.desiredState === "running" && t.state === "RUNNING").length === n &&
    (await service(i, "lp-web"))?.running === n;
  /** Polls until `probe` holds on process `i`, and records how long that took. */
  const seen = async (what: string, i: number, probe: () => Promise<boolean>) => {
    const t0 = Date.now();
    await until(`${"AB"[i]} to show ${what}`, probe, DEADLINE_MS);
    delays[what] = Date.now() - t0;
  };
  const channel = () => `${cp.queuePrefix}:events:subscriber`;
  /** B's event subscriber connections, as Redis lists them (its pid's sockets, by port). */
  const subscriberOf = async (i: number) =>
    redisClientIdsOf(cp.replicas[i]!.child.pid!, (await redis.call("CLIENT", "LIST", "TYPE", "pubsub")) as string, channel());

  /**
   * Waits until process `i` answers listings from copies, which it does only while its event
   * subscription is confirmed, reading only its nodes listing: a node label written straight
   * into Postgres (no event) that its answer lacks was served from a copy.
   */
  const servingCopies = async (i: number) => {
    let probe = 0;
    await until(
      `${"AB"[i]} to serve copies again`,
      async () => {
        probe++;
        await db.query(`UPDATE "Node" SET labels = labels || jsonb_build_object('probe', $1::text) WHERE hostname = 'lp-node'`, [
          String(probe),
        ]);
        return (await get<NodeView[]>(i, NODES)).body.find((n) => n.hostname === "lp-node")?.labels.probe !== String(probe);
      },
      DEADLINE_MS,
    );
  };

  beforeAll(async () => {
    const long = { FLOTILLA_LISTING_MAX_AGE_MS: String(MAX_AGE_MS) };
    cp = await startApiReplicas(
      [
        { role: "api", env: long },
        { role: "api", env: long },
        { role: "worker", env: {} },
      ],
      inject("redisUrl"),
      () => ({ FLOTILLA_HEARTBEAT_MS: String(HEARTBEAT_MS) }),
    );
    redis = new IORedis(inject("redisUrl"), { maxRetriesPerRequest: 1 });
    db = new pg.Client({ connectionString: cp.db.url });
    await db.connect();
    // Beats to B (to A if B does not answer): killing A costs it no beat, and B is held stopped
    // for well under the 3 missed beats that would mark the node down (and move its tasks).
    agent = await new SimAgent({
      hostname: "lp-node",
      apiUrl: [cp.urls[B], cp.urls[A]].join(","),
      token: cp.token,
      heartbeatMs: HEARTBEAT_MS,
      images: ["busybox:latest"],
    }).start();
    await send(A, "POST", SERVICES, { name: "lp-quiet", image: "busybox", replicas: 0 });
    // Each API process subscribes to the event channel on its first listing request.
    for (const i of [A, B]) {
      await until(`${"AB"[i]}'s event subscription`, async () => {
        await get(i, SERVICES);
        return (await subscriberOf(i)).length === 1;
      });
    }
  });

  afterAll(async () => {
    console.log(`listings across processes: ${JSON.stringify({ delaysMs: delays })}`);
    await agent?.stop();
    redis?.disconnect();
    await db?.end();
    await cp?.stop();
  });

  it("a write through A: shown by A at once, by B as A's event arrives, the worker's as its events do; ETags and 304 on both", async () => {
    const before = await Promise.all([A, B].map((i) => get(i, SERVICES)));
    expect(before[0]!.etag).toMatch(/^"[A-Za-z0-9_-]+"$/);
    // The same bytes in both processes: one ETag whichever a load balancer picks.
    expect(before[1]!.etag).toBe(before[0]!.etag);
    for (const i of [A, B]) expect((await call(i, "GET", SERVICES, undefined, { "if-none-match": before[0]!.etag })).status).toBe(304);

    await send(A, "POST", SERVICES, { name: "lp-web", image: "busybox", replicas: 2 });
    expect((await service(A, "lp-web"))?.desired).toBe(2);
    await seen("a service created on A", B, async () => (await service(B, "lp-web"))?.desired === 2);
    // The tasks are the worker's writes (its own process): both API processes learn of them by events.
    await seen("tasks the worker started", B, () => running(B, 2));
    await until("A to show them too", () => running(A, 2), DEADLINE_MS);

    for (const path of [SERVICES, TASKS]) {
      const [a, b] = await Promise.all([A, B].map((i) => get(i, path)));
      expect(a!.etag, path).not.toBe(before[0]!.etag);
      expect(b!.etag, path).toBe(a!.etag);
      for (const i of [A, B]) expect((await call(i, "GET", path, undefined, { "if-none-match": a!.etag })).status, path).toBe(304);
    }

    // A node's label through A: the nodes listing on B (heartbeat times change without events, so
    // each process's own ETag).
    const nodes = await Promise.all([A, B].map((i) => get<NodeView[]>(i, NODES)));
    for (const i of [A, B]) expect((await call(i, "GET", NODES, undefined, { "if-none-match": nodes[i]!.etag })).status).toBe(304);
    await send(A, "PATCH", `${NODES}/lp-node`, { labelAdd: { tier: "front" } });
    for (const i of [A, B]) {
      await seen(`a node label set on A (${"AB"[i]})`, i, async () => {
        const res = await call(i, "GET", NODES, undefined, { "if-none-match": nodes[i]!.etag });
        if (res.status !== 200) return false;
        expect(res.headers.get("etag")).not.toBe(nodes[i]!.etag);
        return ((await res.json()) as NodeView[]).find((n) => n.hostname === "lp-node")?.labels.tier === "front";
      });
    }
  });

  it("a change made on A while B's event subscription is broken shows on B once it is back (the resync)", async () => {
    // B keeps a copy: a change written straight into Postgres (no event) does not show on B...
    const quiet = await get<ServiceView[]>(B, SERVICES);
    await db.query(`UPDATE "Service" SET spec = jsonb_set(spec, '{labels}', '{"behind":"1"}') WHERE name = 'lp-quiet'`);
    expect((await get<ServiceView[]>(B, SERVICES)).etag).toBe(quiet.etag);

    // ...then B stops (SIGSTOP: it cannot notice anything), its subscriber's connection is killed,
    // and A makes a change whose event B is not subscribed to receive.
    const b = cp.replicas[B]!;
    const subscriber = await subscriberOf(B);
    expect(subscriber).toHaveLength(1);
    b.child.kill("SIGSTOP");
    try {
      await redis.call("CLIENT", "KILL", "ID", subscriber[0]!);
      expect(await subscriberOf(B)).toEqual([]);
      await send(A, "PATCH", `${SERVICES}/lp-quiet`, { labels: { resync: "1" } });
      expect((await service(A, "lp-quiet"))?.spec.labels).toEqual({ resync: "1" });
      // Still nothing of B's subscribed: the event went by.
      expect(await subscriberOf(B)).toEqual([]);
    } finally {
      b.child.kill("SIGCONT");
    }
    const resumed = Date.now();
    // B finds its connection gone and subscribes on a new one...
    await until("B to subscribe again", async () => (await subscriberOf(B)).some((id) => id !== subscriber[0]), DEADLINE_MS);
    // ...and, once that is confirmed, serves copies again: it must not trust what it kept. No
    // request for B's services listing until then: a read it started while not subscribed would
    // be a fresh one, and could hide a copy kept from before the break.
    await servingCopies(B);
    delays["B resumed until subscribed and serving copies"] = Date.now() - resumed;
    expect((await service(B, "lp-quiet"))?.spec.labels).toEqual({ resync: "1" });
    // And it follows A's events again.
    await send(A, "PATCH", `${SERVICES}/lp-quiet`, { labels: { resync: "2" } });
    await seen("a change after the resync", B, async () => (await service(B, "lp-quiet"))?.spec.labels.resync === "2");
  });

  it(`a token revoked on A is refused by B within ${REVOKE_BOUND_MS} ms`, async () => {
    const created = (await (await send(A, "POST", "/api/v1/tokens", { name: "lp-viewer", role: "viewer" })).json()) as { token: string };
    const asViewer = (i: number) => call(i, "GET", SERVICES, undefined, {}, created.token);
    // Both have checked it, and keep the answer.
    expect((await asViewer(A)).status).toBe(200);
    expect((await asViewer(B)).status).toBe(200);
    await send(A, "DELETE", "/api/v1/tokens/lp-viewer");
    // The revoke is committed before A answers: every request sent to B 1 s after this is refused.
    const revoked = Date.now();
    expect((await asViewer(A)).status).toBe(401);
    const answers: { sentMs: number; status: number }[] = [];
    while (answers.filter((a) => a.sentMs >= REVOKE_BOUND_MS).length < 5) {
      const sentMs = Date.now() - revoked;
      const res = await asViewer(B);
      answers.push({ sentMs, status: res.status });
      if (res.status === 401) expect(((await res.json()) as { message: string }).message).toMatch(/unknown or was revoked/);
      if (sentMs > DEADLINE_MS) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    const late = answers.filter((a) => a.sentMs >= REVOKE_BOUND_MS);
    expect(late.length, JSON.stringify(answers)).toBeGreaterThan(0);
    expect(
      late.every((a) => a.status === 401),
      JSON.stringify(answers),
    ).toBe(true);
    // Once refused, refused: no process answers from an older check after a newer one.
    const firstRefused = answers.findIndex((a) => a.status === 401);
    expect(answers.slice(firstRefused).every((a) => a.status === 401)).toBe(true);
    delays["a token revoked on A refused (first refusal)"] = answers[firstRefused]!.sentMs;
  });

  it("A killed with SIGKILL mid-scale: B keeps answering with current listings; A restarted shows the current state", async () => {
    // A client polling B throughout: every answer a 200 that lists the service.
    let polling = true;
    const failures: string[] = [];
    let polls = 0;
    const poller = (async () => {
      while (polling) {
        const res = await call(B, "GET", SERVICES).catch((e: Error) => e);
        if (res instanceof Error) failures.push(res.message);
        else if (res.status !== 200) failures.push(`${res.status} ${await res.text()}`);
        else if (!((await res.json()) as ServiceView[]).some((s) => s.name === "lp-web")) failures.push("lp-web missing");
        polls++;
        await new Promise((r) => setTimeout(r, 50));
      }
    })();
    try {
      // The scale is acknowledged (committed, its event published), then A dies while the worker
      // starts the new tasks.
      await send(A, "POST", `${SERVICES}/lp-web/scale`, { replicas: 4 });
      await cp.kill(A);
      await seen("a scale through A, A killed", B, async () => (await service(B, "lp-web"))?.desired === 4);
      await seen("the worker's tasks, A killed", B, () => running(B, 4));

      // A write while A is down, through B.
      await send(B, "POST", `${SERVICES}/lp-web/scale`, { replicas: 3 });
      expect((await service(B, "lp-web"))?.desired).toBe(3);
      await seen("the scale down done", B, () => running(B, 3));
    } finally {
      polling = false;
      await poller;
    }
    expect(failures).toEqual([]);
    expect(polls).toBeGreaterThan(0);

    // A new A starts from the database: exactly what B shows, to the byte, once B's copy has
    // caught up with the worker's last events (B answers with its copy while a newer read runs).
    await cp.restart(A);
    for (const path of [SERVICES, TASKS]) {
      let last: { body: unknown; etag: string }[] = [];
      await until(
        `A and B to answer ${path} alike`,
        async () => {
          last = await Promise.all([A, B].map((i) => get(i, path)));
          return JSON.stringify(last[0]!.body) === JSON.stringify(last[1]!.body);
        },
        DEADLINE_MS,
      );
      expect(last[0]!.etag, path).toBe(last[1]!.etag);
      expect((await call(A, "GET", path, undefined, { "if-none-match": last[1]!.etag })).status).toBe(304);
    }
    expect((await service(A, "lp-web"))?.desired).toBe(3);
    // And the restarted A's writes reach B as before.
    await send(A, "PATCH", `${SERVICES}/lp-quiet`, { labels: { after: "restart" } });
    await seen("a write through the restarted A", B, async () => (await service(B, "lp-quiet"))?.spec.labels.after === "restart");
  });
});
