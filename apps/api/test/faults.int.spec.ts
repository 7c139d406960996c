// Faults done for real, against a Postgres and a Redis of this suite's own: Postgres stopped
// while agents heartbeat, Redis killed (-9) and started empty. The control plane must leave the
// workloads alone (no node down, nothing orphaned, replaced or removed) and heal by itself.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import pg from "pg";
import { startTestApiOn, type TestApi } from "./support";
import type { SimAgent } from "../../../test/support/sim-agent";
import { converged, getJson, HEARTBEAT_MS, send, simNodes, until } from "./services-support";
import { startFaultStack, type FaultStack } from "./fault-stack";
import { QueuesService } from "../src/queues/queues.service";
import { ctl } from "../../ctl/test/run-ctl";

/** Node-down events and orphaned tasks recorded since event `after` (read straight from Postgres). */
async function damage(stack: FaultStack, after: bigint): Promise<{ down: number; orphaned: number }> {
  const c = new pg.Client({ connectionString: stack.databaseUrl });
  await c.connect();
  try {
    const [{ down }] = (
      await c.query(`SELECT count(*)::int AS down FROM "Event" WHERE id > $1 AND kind = 'node' AND action = 'down'`, [after.toString()])
    ).rows;
    const [{ orphaned }] = (await c.query(`SELECT count(*)::int AS orphaned FROM "Task" WHERE state = 'ORPHANED'`)).rows;
    return { down, orphaned };
  } finally {
    await c.end();
  }
}

async function lastEventId(stack: FaultStack): Promise<bigint> {
  const c = new pg.Client({ connectionString: stack.databaseUrl });
  await c.connect();
  try {
    return BigInt((await c.query(`SELECT coalesce(max(id), 0)::text AS id FROM "Event"`)).rows[0].id);
  } finally {
    await c.end();
  }
}

const containersOf = (agents: SimAgent[]) => agents.flatMap((a) => a.running().map((c) => `${a.opts.hostname}/${c.id}`)).sort();
const removals = (agents: SimAgent[]) =>
  agents.reduce(
    (n, a) => n + a.calls.filter((c) => c.startsWith("DELETE /containers") || c.startsWith("POST /containers/{id}/stop")).length,
    0,
  );

/** Waits until every agent had `n` more successful heartbeats than in `before`. */
async function beatsOk(agents: SimAgent[], n: number, what: string): Promise<void> {
  const before = agents.map((a) => a.heartbeatsOk);
  await until(what, async () => agents.every((a, i) => a.heartbeatsOk >= before[i] + n), 60_000);
}

describe("faults", () => {
  let stack: FaultStack;
  let api: TestApi;
  let agents: SimAgent[];
  beforeAll(async () => {
    stack = await startFaultStack();
    api = await startTestApiOn({ name: "flotilla", url: stack.databaseUrl, drop: async () => {} }, stack.redisUrl, {
      FLOTILLA_ROLE: "all",
      FLOTILLA_LOG_LEVEL: "error",
      FLOTILLA_HEARTBEAT_MS: String(HEARTBEAT_MS),
      // Agents may wait this long between retries after failures (the simulated ones do not, but
      // one of them imitates it below): no node may go down for it after an outage.
      FLOTILLA_AGENT_MAX_BACKOFF_MS: "20000",
      FLOTILLA_SWEEP_INTERVAL_MS: "2000",
    });
    agents = await simNodes(api, 3);
  });
  afterAll(async () => {
    await Promise.all((agents ?? []).map((a) => a.stop()));
    await api?.stop();
    stack?.down();
  });

  it("Postgres stopped well past the down window: no node goes down, no task is orphaned, replaced or removed", async () => {
    await send(api, "POST", "/api/v1/services", { name: "steady", image: "busybox", replicas: 6 });
    const before = await converged(api, "steady", 6);
    const containers = containersOf(agents);
    const since = await lastEventId(stack);
    const removed = removals(agents);

    stack.stopPostgres();
    // A change asked for meanwhile is refused, saying what is down and that nothing changed.
    const refused = await send(api, "PATCH", "/api/v1/services/steady", { replicas: 7 });
    expect(refused.status).toBe(503);
    expect(await refused.json()).toMatchObject({
      error: "unavailable",
      message: "Postgres is unavailable: nothing was changed",
      details: { dependency: "postgres" },
    });
    const cli = await ctl(["service", "scale", "steady=7"], { FLOTILLA_CONFIG_DIR: api.config.configDir });
    expect(cli.code).toBe(1);
    expect(cli.stderr).toContain("Postgres is unavailable: nothing was changed");
    // Heartbeats fail for many down windows (3 beats each).
    const failures = agents.map((a) => a.heartbeatFailures);
    await until(
      "heartbeats to fail for four down windows",
      async () => agents.every((a, i) => a.heartbeatFailures >= failures[i] + 12),
      60_000,
    );
    // One agent is still waiting out its retry back-off when Postgres returns: it reports only
    // once the others have been heard for two down windows.
    agents[0].pauseHeartbeats();
    stack.startPostgres();
    await beatsOk(agents.slice(1), 6, "the other agents to be heard for two down windows");
    agents[0].resumeHeartbeats();
    // Then every agent beating again for several windows.
    await beatsOk(agents, 12, "heartbeats to be taken again for several windows");

    expect(await damage(stack, since)).toEqual({ down: 0, orphaned: 0 });
    const after = await converged(api, "steady", 6);
    expect(after.map((t) => t.id).sort()).toEqual(before.map((t) => t.id).sort());
    expect(containersOf(agents)).toEqual(containers);
    expect(removals(agents)).toBe(removed);
    const nodes = await getJson<{ status: string }[]>(api, "/api/v1/nodes");
    expect(nodes.map((n) => n.status)).toEqual(["ready", "ready", "ready"]);
  });

  it("Redis killed and started empty: heartbeats go on, the schedule comes back, and a change made meanwhile rolls out", async () => {
    await send(api, "POST", "/api/v1/services", { name: "cache", image: "busybox", replicas: 2 });
    await converged(api, "cache", 2);
    const since = await lastEventId(stack);
    const queues = api.running.app.get(QueuesService);
    expect(await queues.hasSweep()).toBe(true);
    // A live event stream opened before the fault (its Redis subscription must come back).
    const stream = await api.fetch("/api/v1/events?kind=token");
    const reader = stream.body!.getReader();

    stack.killRedis();
    // Nodes keep reporting to Postgres while Redis is away.
    await beatsOk(agents, 6, "heartbeats to be taken while Redis is down");
    const scaled = await send(api, "PATCH", "/api/v1/services/cache", { replicas: 4 });
    expect(scaled.status).toBe(503);
    expect(await scaled.json()).toMatchObject({
      message: "Redis is unavailable: the change is saved and will roll out when it returns",
      details: { dependency: "redis" },
    });
    const cli = await ctl(["service", "scale", "steady=7"], { FLOTILLA_CONFIG_DIR: api.config.configDir });
    expect(cli.code).toBe(1);
    expect(cli.stderr).toContain("Redis is unavailable: the change is saved and will roll out when it returns");
    // The change is in Postgres: the service says 4 even though nothing rolled out yet.
    expect((await getJson<{ desired: number }>(api, "/api/v1/services/cache")).desired).toBe(4);
    // A machine create is work only a job does: refused, and nothing is kept (no machine left
    // "creating" that nothing will create).
    const machine = await send(api, "POST", "/api/v1/machines", { name: "while-redis-down", driver: "netns" });
    expect(machine.status).toBe(503);
    expect(await machine.json()).toMatchObject({
      message: "Redis is unavailable: nothing was changed (machine operations run as queued jobs); try again when it is back",
      details: { dependency: "redis" },
    });
    expect((await getJson<{ name: string }[]>(api, "/api/v1/machines")).map((m) => m.name)).not.toContain("while-redis-down");

    stack.startRedis();
    // Within one sweep period (2 s) of Redis answering: the schedule is back and the change converges.
    await converged(api, "cache", 4, 30_000);
    expect(await queues.hasSweep()).toBe(true);
    // And the queues work for new changes.
    await send(api, "PATCH", "/api/v1/services/cache", { replicas: 5 });
    await converged(api, "cache", 5, 30_000);
    // The scale ctl asked for while Redis was down rolled out too.
    await converged(api, "steady", 7, 30_000);
    expect(await damage(stack, since)).toEqual({ down: 0, orphaned: 0 });
    // Events published after the restart reach the stream opened before it.
    await send(api, "POST", "/api/v1/tokens", { name: "after-redis" });
    let text = "";
    while (!text.includes("after-redis")) {
      const { value, done } = await reader.read();
      if (done) break;
      text += new TextDecoder().decode(value);
    }
    await reader.cancel();
    expect(text).toContain('"action":"create"');
  });
});
