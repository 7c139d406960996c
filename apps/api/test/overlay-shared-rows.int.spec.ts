// The overlay tables' rows are read once and shared by every beat and poll. A fleet booting is
// thousands of nodes registering, each with a table poll that has no version yet: each of those
// had read every node's row again, back to back for as long as the fleet registered (40 s of
// 5,000 agents' registration). Now a node the shared rows do not have yet, or whose own row
// changed since, reads that row alone.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { NodeNetworkTable } from "@flotilla/core";
import { PrismaService } from "../src/database/prisma.service";
import type { TestApi } from "./support";
import { SimAgent } from "../../../test/support/sim-agent";
import { HEARTBEAT_MS, startFastApi, until } from "./services-support";

describe("overlay tables while nodes register", () => {
  let api: TestApi;
  const agents: SimAgent[] = [];
  /** Reads of every node's table rows (the networks' columns are read with them). */
  let fullReads = 0;

  beforeAll(async () => {
    api = await startFastApi();
    const sql = api.running.app.get(PrismaService).sql;
    const query = sql.query.bind(sql);
    sql.query = ((text: string, values?: unknown[]) => {
      if (text.includes('gateway FROM "OverlayNetwork"')) fullReads++;
      return query(text, values);
    }) as typeof sql.query;
  });
  afterAll(async () => {
    await Promise.all(agents.map((a) => a.stop()));
    await api?.stop();
  });

  const start = async (i: number) => {
    const agent = await new SimAgent({
      hostname: `reg-${i}`,
      apiUrl: api.url,
      token: api.token,
      heartbeatMs: HEARTBEAT_MS,
      images: ["busybox:latest"],
      bindAddress: `127.0.0.${40 + i}`,
      watchTables: true,
    }).start();
    agents.push(agent);
    return agent;
  };
  const table = async (node: string, query: string): Promise<NodeNetworkTable> => {
    const res = await api.fetch(`/api/v1/nodes/networks?node=${node}&${query}`);
    expect(res.status).toBe(200);
    return (await res.json()) as NodeNetworkTable;
  };

  it("answers nodes that registered after the shared read with their own address, reading only their rows", async () => {
    await start(0);
    expect((await table("reg-0", "waitMs=1000")).nodeAddress).toBe("127.0.0.40");
    const before = fullReads;
    for (let i = 1; i <= 6; i++) await start(i);
    // Each new agent's first poll (no version, a wait) was answered; and so is anyone asking so.
    for (let i = 1; i <= 6; i++) {
      const t = await table(`reg-${i}`, "waitMs=1000");
      expect(t).toMatchObject({ nodeAddress: `127.0.0.${40 + i}`, networks: [] });
      expect(t).not.toHaveProperty("unavailable");
    }
    // The shared rows may have aged out once meanwhile (LIVE_CACHE_MS); before, it was a full
    // read for each new node's first poll.
    expect(fullReads - before).toBeLessThanOrEqual(1);
  });

  it("still answers a request with no version and no wait from rows read after it arrived", async () => {
    const before = fullReads;
    const t = await table("reg-3", "waitMs=0");
    expect(t.nodeAddress).toBe("127.0.0.43");
    expect(fullReads).toBe(before + 1);
  });

  it("makes no waiting poll read again for a service created without networks", async () => {
    // Such a service, and its tasks' events, change no node's table: each creation had woken
    // every poll of every agent, to read the rows again and compare.
    const current = await table("reg-4", "waitMs=1000");
    const before = fullReads;
    const waiting = api.fetch(`/api/v1/nodes/networks?node=reg-4&waitMs=2000&version=${current.version}`);
    await new Promise((r) => setTimeout(r, 200));
    const created = await api.fetch("/api/v1/services", {
      method: "POST",
      body: JSON.stringify({ name: "plain", image: "busybox", replicas: 2 }),
    });
    expect(created.status).toBe(201);
    expect((await waiting).status).toBe(204);
    expect(fullReads).toBe(before);
  });

  it("answers a node its new address once it beats with one, and the others from the rows still shared", async () => {
    const agent = agents[2]!;
    const first = await table("reg-2", "waitMs=1000");
    const before = fullReads;
    // An admin's beat may move a node without a machine (what an agent's address change is).
    const res = await api.fetch("/api/v1/nodes/heartbeat", {
      method: "POST",
      body: JSON.stringify({
        hostname: "reg-2",
        engineUrl: agent.url.replace("127.0.0.42", "127.0.0.52"),
        resources: { nanoCpus: 4e9, memoryBytes: 8 * 1024 ** 3 },
        containers: [],
      }),
    });
    expect(res.status).toBe(200);
    const moved = await until("reg-2's table to name its new address", async () => {
      const t = await table("reg-2", `waitMs=5000&version=${first.version}`);
      return t.nodeAddress === "127.0.0.52" ? t : undefined;
    });
    expect(moved.version).not.toBe(first.version);
    expect((await table("reg-1", "waitMs=1000")).nodeAddress).toBe("127.0.0.41");
    expect(fullReads - before).toBeLessThanOrEqual(1);
  });
});
