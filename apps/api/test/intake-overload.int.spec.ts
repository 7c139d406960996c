// The control plane itself behind on heartbeats: beats reach the API but wait (here: held on a
// table lock their first query needs, as a saturated database pool would hold them) while the
// API process, Postgres and Redis all answer probes. The silence is ours, not the nodes': no
// node may be declared down for it, and once beats flow again every agent gets a full window.
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { TestApi } from "./support";
import type { SimAgent } from "../../../test/support/sim-agent";
import { PrismaService } from "../src/database/prisma.service";
import { getJson, HEARTBEAT_MS, simNodes, startFastApi, until } from "./services-support";

describe("heartbeat intake overloaded", () => {
  let api: TestApi;
  let agents: SimAgent[];
  let db: pg.Client;
  beforeAll(async () => {
    api = await startFastApi();
    agents = await simNodes(api, 3);
    db = new pg.Client({ connectionString: api.db.url });
    await db.connect();
  });
  afterAll(async () => {
    await db?.end();
    await Promise.all((agents ?? []).map((a) => a.stop()));
    await api?.stop();
  });

  const lastBeats = async () =>
    (await db.query<{ hostname: string; at: Date }>(`SELECT hostname, "lastHeartbeatAt" AS at FROM "Node" ORDER BY hostname`)).rows.map(
      (r) => `${r.hostname}@${r.at.getTime()}`,
    );
  const downEvents = async () =>
    Number((await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM "Event" WHERE kind = 'node' AND action = 'down'`)).rows[0].n);

  it("declares no node down while beats wait in the API, however long", async () => {
    // Past the start-up grace: a silent node would be declared down within a window (3 beats).
    await new Promise((r) => setTimeout(r, 8 * HEARTBEAT_MS));
    expect(await downEvents()).toBe(0);

    // Every beat reads the Machine table first (the engine URL of a machine's node): an
    // exclusive lock on it holds every beat before its node is touched.
    const hold = new pg.Client({ connectionString: api.db.url });
    await hold.connect();
    await hold.query(`BEGIN; LOCK TABLE "Machine" IN ACCESS EXCLUSIVE MODE`);
    const held = await lastBeats();
    const sent = agents.map((a) => a.heartbeatMs.length + a.heartbeatFailures);
    try {
      // Six down windows; the agents keep sending (their beats pile up in the API).
      await new Promise((r) => setTimeout(r, 18 * HEARTBEAT_MS));
      // The premise: no beat got through, the nodes look silent for many windows.
      expect(await lastBeats()).toEqual(held);
      expect(agents.every((a, i) => a.heartbeatMs.length + a.heartbeatFailures === sent[i])).toBe(true);
      expect(await downEvents()).toBe(0);
    } finally {
      await hold.query("ROLLBACK");
      await hold.end();
    }

    // The queued beats go through; several windows of beats afterwards, still nothing down.
    const ok = agents.map((a) => a.heartbeatsOk);
    await until(
      "heartbeats to be taken again for several windows",
      async () => agents.every((a, i) => a.heartbeatsOk >= ok[i] + 12),
      30_000,
    );
    expect(await downEvents()).toBe(0);
    const statuses = await db.query<{ status: string }>(`SELECT lower(status::text) AS status FROM "Node"`);
    expect(statuses.rows.map((r) => r.status)).toEqual(["ready", "ready", "ready"]);
  });
});

describe("heartbeat pace", () => {
  let api: TestApi;
  let agents: SimAgent[];
  beforeAll(async () => {
    // Sized for one beat a second: three nodes are told to beat every 3 s.
    api = await startFastApi({ FLOTILLA_MAX_HEARTBEATS_PER_S: "1" });
    agents = await simNodes(api, 3);
  });
  afterAll(async () => {
    await Promise.all((agents ?? []).map((a) => a.stop()));
    await api?.stop();
  });

  it("tells agents a period stretched to the cluster's size, and judges each node by the period it was told", async () => {
    await until("every agent to be told 3 s", async () => agents.every((a) => a.intervalMs === 3_000), 10_000);
    const nodes = await api.running.app.get(PrismaService).node.findMany({ select: { heartbeatMs: true } });
    expect(nodes.map((n) => n.heartbeatMs)).toEqual([3_000, 3_000, 3_000]);
    // Silent for longer than three configured periods (1.5 s), not than three told ones (9 s).
    const victim = agents[0];
    victim.pauseHeartbeats();
    const pausedAt = Date.now();
    const status = async () => (await getJson<{ status: string }>(api, `/api/v1/nodes/${victim.opts.hostname}`)).status;
    await new Promise((r) => setTimeout(r, 6_000));
    expect(await status()).toBe("ready");
    await until("the node to go down", async () => (await status()) === "down", 20_000);
    expect(Date.now() - pausedAt).toBeGreaterThanOrEqual(9_000);
  });
});
