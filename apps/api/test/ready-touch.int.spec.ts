// A ready node's beat (the steady state at scale) decides its engine URL from what its one touch
// statement reads: the machine's address, taken on the first beat after it changed; an admin
// token's reported URL for a node without a machine; never an agent token's. And it is one
// statement, with a second only when a URL changes: at 5,000 nodes every round trip of a beat
// shows in its latency.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PrismaService } from "../src/database/prisma.service";
import type { SqlRunner } from "../src/database/sql";
import type { FlotillaEvent } from "../src/events/events.service";
import type { HeartbeatBody } from "../src/heartbeats/heartbeat-body";
import { touchReady, type TouchItem } from "../src/heartbeats/ready-touch";
import { agentTokenFor, type TestApi } from "./support";
import { getJson, startFastApi } from "./services-support";

describe("a ready node's beat and its engine URL", () => {
  let api: TestApi;
  let prisma: PrismaService;

  beforeAll(async () => {
    // A long period: no node goes down between the steps, so every beat after the first takes
    // the ready path this suite is about.
    api = await startFastApi({ FLOTILLA_HEARTBEAT_MS: "60000", FLOTILLA_AGENT_MAX_BACKOFF_MS: "60000" });
    prisma = api.running.app.get(PrismaService);
  });
  afterAll(async () => {
    await api?.stop();
  });

  const agentToken = (machine: string) => agentTokenFor(api, machine);
  const body = (hostname: string, engineUrl: string): HeartbeatBody => ({
    hostname,
    engineUrl,
    resources: { nanoCpus: 4e9, memoryBytes: 8 * 1024 ** 3 },
    labels: {},
    containers: [],
  });
  const beat = async (token: string, hostname: string, engineUrl: string) => {
    const res = await api.fetch("/api/v1/nodes/heartbeat", { method: "POST", token, body: JSON.stringify(body(hostname, engineUrl)) });
    expect(res.status).toBe(200);
  };
  const recorded = async (hostname: string) => {
    const node = await getJson<{ engineUrl: string | null; status: string }>(api, `/api/v1/nodes/${hostname}`);
    expect(node.status).toBe("ready");
    return node.engineUrl;
  };

  it("takes a machine's new address on the next beat of its ready node, whatever the agent reports", async () => {
    await prisma.machine.create({ data: { name: "mover", driver: "generic", state: "READY", ip: "127.0.0.1" } });
    const token = await agentToken("mover");
    await beat(token, "mover", "https://198.18.250.9:2376"); // registers the node
    expect(await recorded("mover")).toBe("https://127.0.0.1:2376");
    await beat(token, "mover", "https://198.18.250.9:2376");
    expect(await recorded("mover")).toBe("https://127.0.0.1:2376");
    await prisma.machine.update({ where: { name: "mover" }, data: { ip: "::1" } });
    await beat(token, "mover", "https://198.18.250.9:2376");
    expect(await recorded("mover")).toBe("https://[::1]:2376");
    // A machine whose address its driver no longer knows keeps the URL on record.
    await prisma.machine.update({ where: { name: "mover" }, data: { ip: null } });
    await beat(token, "mover", "https://198.18.250.9:2376");
    expect(await recorded("mover")).toBe("https://[::1]:2376");
  });

  it("records an admin reporter's new URL for a node without a machine, and never an agent token's", async () => {
    await beat(api.token, "drifter", "http://127.0.0.1:40001");
    expect(await recorded("drifter")).toBe("http://127.0.0.1:40001");
    await beat(api.token, "drifter", "http://127.0.0.1:40002");
    expect(await recorded("drifter")).toBe("http://127.0.0.1:40002");
    // An agent token for the same host name (its join token issued, no machine record).
    await beat(await agentToken("drifter"), "drifter", "http://198.18.250.9:2375");
    expect(await recorded("drifter")).toBe("http://127.0.0.1:40002");
  });

  it("is one statement per batch while no URL changes, and one more for the batch's changes", async () => {
    await prisma.machine.create({ data: { name: "counted", driver: "generic", state: "READY", ip: "127.0.0.3" } });
    await beat(await agentToken("counted"), "counted", "https://198.18.250.9:2376");
    await beat(api.token, "counted-sim", "http://127.0.0.1:40003");
    // The real statements on the real database, counted as they go by.
    const statements: string[] = [];
    const counting: SqlRunner = {
      query: (text, values) => {
        statements.push(text);
        return prisma.sql.query(text, values);
      },
    };
    const item = (hostname: string, engineUrl: string, admin: boolean, withTasks = false): TouchItem => ({
      hb: body(hostname, engineUrl),
      withTasks,
      reporter: { admin },
      periodMs: 60_000,
    });
    const published: FlotillaEvent[] = [];
    const publish = async (evs: FlotillaEvent[]) => void published.push(...evs);
    const touch = async (items: TouchItem[]) => {
      statements.length = 0;
      published.length = 0;
      const touched = await touchReady(counting, items, Date.now(), publish);
      expect(touched.map((t) => t?.node.hostname ?? null)).toEqual(items.map((i) => i.hb.hostname));
      return statements.length;
    };

    // Steady state, with and without the active tasks read.
    expect(await touch([item("counted", "https://198.18.250.9:2376", false), item("counted-sim", "http://127.0.0.1:40003", true)])).toBe(1);
    expect(
      await touch([item("counted", "https://198.18.250.9:2376", false, true), item("counted-sim", "http://127.0.0.1:40003", true, true)]),
    ).toBe(1);
    expect(published).toEqual([]);
    // Both URLs change: one more statement records them, with an event each.
    await prisma.machine.update({ where: { name: "counted" }, data: { ip: "127.0.0.4" } });
    expect(await touch([item("counted", "https://198.18.250.9:2376", false), item("counted-sim", "http://127.0.0.1:40004", true)])).toBe(2);
    expect(published.map((e) => [e.kind, e.action, e.data])).toEqual([
      ["node", "address", { hostname: "counted", engineUrl: "https://127.0.0.4:2376" }],
      ["node", "address", { hostname: "counted-sim", engineUrl: "http://127.0.0.1:40004" }],
    ]);
    expect(await recorded("counted")).toBe("https://127.0.0.4:2376");
    expect(await recorded("counted-sim")).toBe("http://127.0.0.1:40004");
    // Recorded: back to one.
    expect(await touch([item("counted", "https://198.18.250.9:2376", false), item("counted-sim", "http://127.0.0.1:40004", true)])).toBe(1);
    // A node that is not ready (unknown here) is answered null, for the registration path.
    statements.length = 0;
    expect(await touchReady(counting, [item("nobody", "http://127.0.0.1:40005", true)], Date.now(), publish)).toEqual([null]);
    expect(statements.length).toBe(1);
  });

  it("wakes the node's waiting table polls when its address changes", async () => {
    // While the event stream delivers, waiting polls read again only when an event says so: an
    // address recorded without one reached them only at their deadline (204).
    await beat(api.token, "hopper", "http://127.0.0.1:40011");
    const tableOf = async (query: string) => {
      const res = await api.fetch(`/api/v1/nodes/networks?node=hopper&${query}`);
      return {
        status: res.status,
        table: res.status === 200 ? ((await res.json()) as { version: string; nodeAddress?: string }) : undefined,
      };
    };
    const first = await tableOf("waitMs=0");
    expect(first.table?.nodeAddress).toBe("127.0.0.1");
    const asked = Date.now();
    const waiting = tableOf(`waitMs=15000&version=${first.table!.version}`).then((r) => ({ ...r, afterMs: Date.now() - asked }));
    await new Promise((r) => setTimeout(r, 300));
    await beat(api.token, "hopper", "http://127.0.0.2:40011");
    const answer = await waiting;
    expect(answer).toMatchObject({ status: 200, table: { nodeAddress: "127.0.0.2" } });
    // Woken by the change, not answered by the read at its deadline (which finds it too).
    expect(answer.afterMs).toBeLessThan(7_500);
  });
});
