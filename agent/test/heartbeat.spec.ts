// The heartbeat loop against a tiny HTTP server on loopback standing in for the control plane.
import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { heartbeatsFromEnv, retryDelayMs, startHeartbeats, type HeartbeatContainer, type Heartbeats } from "../src/heartbeat";
import type { IngressTable } from "../src/ingress";

interface Received {
  auth: string | undefined;
  body: {
    nodeId?: string;
    hostname: string;
    engineUrl: string;
    resources: unknown;
    labels: unknown;
    containers: HeartbeatContainer[];
    ingressVersion?: string;
  };
}

async function controlPlane(answer: (n: number, req: IncomingMessage) => { status: number; body: unknown }) {
  const received: Received[] = [];
  const server: Server = createServer((req, res) => {
    let data = "";
    req.on("data", (c: Buffer) => (data += c.toString()));
    req.on("end", () => {
      if (req.url !== "/api/v1/nodes/heartbeat" || req.method !== "POST") {
        res.writeHead(404).end();
        return;
      }
      received.push({ auth: req.headers.authorization, body: JSON.parse(data) as Received["body"] });
      const a = answer(received.length, req);
      res.writeHead(a.status, { "content-type": "application/json" }).end(JSON.stringify(a.body));
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return { url, received, close: () => new Promise<void>((r) => server.close(() => r())) };
}

async function until(cond: () => boolean, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** A node with nothing running, beating to `apiUrl`; each test adds the options it looks at. */
const idleNode = (apiUrl: string) => ({
  apiUrl,
  token: "t",
  engineUrl: "https://198.18.0.2:2376",
  listContainers: async (): Promise<HeartbeatContainer[]> => [],
  resources: { nanoCpus: 1, memoryBytes: 1 },
});

describe("agent heartbeats", () => {
  let hb: Heartbeats | undefined;
  let close: (() => Promise<void>) | undefined;
  afterEach(async () => {
    await hb?.stop();
    await close?.();
    hb = undefined;
  });

  const containers: HeartbeatContainer[] = [
    { id: "c1", labels: { "flotilla.task": "t1" }, state: "running", startedAt: "2026-01-01T00:00:00Z" },
  ];

  it("registers, then sends the node id, at the pace the control plane sets", async () => {
    const cp = await controlPlane(() => ({ status: 200, body: { nodeId: "11111111-1111-4111-8111-111111111111", heartbeatMs: 50 } }));
    close = cp.close;
    const ids: string[] = [];
    hb = startHeartbeats({
      apiUrl: cp.url + "/",
      token: "flt_secret",
      engineUrl: "https://198.18.0.2:2376",
      hostname: "devdays",
      labels: { zone: "a" },
      intervalMs: 10_000,
      listContainers: async () => containers,
      resources: () => ({ nanoCpus: 2e9, memoryBytes: 1024 }),
      onNodeId: (id) => ids.push(id),
    });
    await until(() => cp.received.length >= 3);
    const [first, second] = cp.received;
    expect(first.auth).toBe("Bearer flt_secret");
    expect(first.body).toEqual({
      hostname: "devdays",
      engineUrl: "https://198.18.0.2:2376",
      resources: { nanoCpus: 2e9, memoryBytes: 1024 },
      labels: { zone: "a" },
      containers,
    });
    expect(second.body.nodeId).toBe("11111111-1111-4111-8111-111111111111");
    expect(ids).toEqual(["11111111-1111-4111-8111-111111111111"]);
    expect(hb.intervalMs).toBe(50);
  });

  it("backs off while the control plane fails, recovers, and re-registers after a 404", async () => {
    const cp = await controlPlane((n) =>
      n <= 2
        ? { status: 503, body: { message: "database down" } }
        : n === 4
          ? { status: 404, body: { message: "node not found" } }
          : { status: 200, body: { nodeId: `node-${n}`, heartbeatMs: 30 } },
    );
    close = cp.close;
    const logs: string[] = [];
    hb = startHeartbeats({
      ...idleNode(cp.url),
      intervalMs: 20,
      log: (m) => logs.push(m),
    });
    await until(() => cp.received.length >= 6);
    expect(logs[0]).toBe("heartbeat failed (1x): HTTP 503: database down");
    expect(cp.received[3].body.nodeId).toBe("node-3");
    // After the 404 the node id is dropped: the next beat registers again.
    expect(cp.received[4].body.nodeId).toBeUndefined();
    expect(logs).toContain("heartbeat: control plane answers again after 2 failed beat(s)");
  });

  it("skips a beat whose container list fails instead of reporting no containers", async () => {
    const cp = await controlPlane(() => ({ status: 200, body: { nodeId: "n", heartbeatMs: 20 } }));
    close = cp.close;
    let calls = 0;
    hb = startHeartbeats({
      apiUrl: cp.url,
      token: "t",
      engineUrl: "https://198.18.0.2:2376",
      intervalMs: 20,
      listContainers: async () => {
        calls++;
        if (calls === 1) throw new Error("shim state unreadable");
        return containers;
      },
      resources: { nanoCpus: 1, memoryBytes: 1 },
    });
    await until(() => cp.received.length >= 1);
    expect(cp.received.every((r) => r.body.containers.length === 1)).toBe(true);
  });

  it("sends the ingress version in force and hands a reply's ingress table to onIngress", async () => {
    const table = (version: string): IngressTable => ({
      version,
      ports: [{ port: 8080, protocol: "tcp", serviceId: "s1", serviceName: "web", backends: [{ host: "198.18.0.2", port: 32768 }] }],
    });
    // The control plane's side of the contract: a table only when the agent's version differs.
    let current = "v1";
    const cp = await controlPlane(() => {
      const sent = cp.received.at(-1)!.body.ingressVersion;
      return { status: 200, body: { nodeId: "n", heartbeatMs: 20, ...(sent === current ? {} : { ingress: table(current) }) } };
    });
    close = cp.close;
    let applied: string | undefined;
    const delivered: IngressTable[] = [];
    const logs: string[] = [];
    hb = startHeartbeats({
      ...idleNode(cp.url),
      intervalMs: 20,
      log: (m) => logs.push(m),
      ingressVersion: () => applied,
      // Heartbeat replies alone here; the long poll has its own test.
      watchIngress: false,
      onIngress: async (t) => {
        delivered.push(t);
        if (t.version === "v3") throw new Error("port 8080: EACCES");
        await new Promise((r) => setTimeout(r, 10));
        applied = t.version;
      },
    });
    // Beats do not wait for the table to be applied: the ones before it is report no version
    // (and get it again), the ones after report v1.
    await until(() => cp.received.at(-1)?.body.ingressVersion === "v1");
    expect(cp.received[0].body).not.toHaveProperty("ingressVersion");
    expect(delivered[0]).toEqual(table("v1"));
    expect(new Set(delivered.map((t) => t.version))).toEqual(new Set(["v1"]));

    current = "v2";
    await until(() => applied === "v2");
    await until(() => cp.received.at(-1)!.body.ingressVersion === "v2");
    expect([...new Set(delivered.map((t) => t.version))]).toEqual(["v1", "v2"]);

    // A table that fails to apply is logged, the beat still counts, and the next reply resends it.
    current = "v3";
    await until(() => delivered.filter((t) => t.version === "v3").length >= 2);
    expect(logs).toContain("heartbeat: ingress table v3 not applied: port 8080: EACCES");
    expect(logs.some((l) => l.startsWith("heartbeat failed"))).toBe(false);
  });

  it("keeps beating while a reply's table is applied, one at a time, and applies only the newest table that waited", async () => {
    const table = (version: string): IngressTable => ({ version, ports: [] });
    let current = "v1";
    const cp = await controlPlane(() => {
      const sent = cp.received.at(-1)!.body.ingressVersion;
      return { status: 200, body: { nodeId: "n", heartbeatMs: 20, ...(sent === current ? {} : { ingress: table(current) }) } };
    });
    close = cp.close;
    // An application that takes as long as the test says: iptables on a slow machine.
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    let applied: string | undefined;
    const delivered: string[] = [];
    let active = 0;
    let mostActive = 0;
    hb = startHeartbeats({
      ...idleNode(cp.url),
      intervalMs: 20,
      ingressVersion: () => applied,
      watchIngress: false,
      onIngress: async (t) => {
        delivered.push(t.version);
        mostActive = Math.max(mostActive, ++active);
        await gate;
        applied = t.version;
        active--;
      },
    });
    // The first table is being applied and beats go on at their pace, each getting it again.
    await until(() => delivered.length === 1 && cp.received.length >= 5);
    expect(cp.received.every((r) => r.body.ingressVersion === undefined)).toBe(true);
    // A newer table meanwhile replaces the copies of v1 waiting.
    current = "v2";
    const seen = cp.received.length;
    await until(() => cp.received.length >= seen + 3);
    expect(delivered).toEqual(["v1"]);
    release();
    await until(() => cp.received.at(-1)!.body.ingressVersion === "v2");
    expect(delivered).toEqual(["v1", "v2"]);
    expect(mostActive).toBe(1);
  });

  it("long-polls GET /api/v1/nodes/ingress: a change arrives at once, not with the next beat", async () => {
    let current = "v1";
    const polls: string[] = [];
    const held = new Set<() => void>();
    const server: Server = createServer((req, res) => {
      const u = new URL(req.url!, "http://x");
      if (req.method === "POST") return void res.writeHead(200, { "content-type": "application/json" }).end('{"nodeId":"n"}');
      expect(u.pathname).toBe("/api/v1/nodes/ingress");
      expect(req.headers.authorization).toBe("Bearer t");
      polls.push(u.searchParams.get("version") ?? "-");
      const answer = () => res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ version: current, ports: [] }));
      if (u.searchParams.get("version") !== current) return answer();
      // Unchanged: held until the table changes (the control plane's side of the contract).
      held.add(answer);
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    close = () => {
      for (const a of held) a();
      return new Promise<void>((r) => server.close(() => r()));
    };
    let applied: string | undefined;
    hb = startHeartbeats({
      ...idleNode(`http://127.0.0.1:${(server.address() as AddressInfo).port}`),
      // No beat after the first within the test: tables come by the poll.
      intervalMs: 60_000,
      ingressVersion: () => applied,
      onIngress: async (t) => {
        applied = t.version;
      },
    });
    await until(() => applied === "v1" && held.size === 1);
    current = "v2";
    const waiting = [...held];
    held.clear();
    for (const a of waiting) a();
    await until(() => applied === "v2" && held.size === 1);
    expect(polls).toEqual(["-", "v1", "v2"]);
  });

  it("overlay network table: from a reply's networks field, by long poll of GET /api/v1/nodes/networks, and fetched at once", async () => {
    let current = "n1";
    const polls: string[] = [];
    const beats: Array<{ networksVersion?: string }> = [];
    const held = new Set<() => void>();
    const table = (v: string) => ({ version: v, nodeAddress: "198.19.205.1", networks: [] });
    const server: Server = createServer((req, res) => {
      const u = new URL(req.url!, "http://x");
      let data = "";
      req.on("data", (c: Buffer) => (data += c.toString()));
      req.on("end", () => {
        if (req.method === "POST") {
          beats.push(JSON.parse(data) as { networksVersion?: string });
          // A reply carries the table when the beat reports another version.
          const sent = beats.at(-1)!.networksVersion;
          const body = sent === current ? { nodeId: "n" } : { nodeId: "n", networks: table(current) };
          return void res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(body));
        }
        if (u.pathname === "/api/v1/nodes/ingress") return void res.writeHead(404).end();
        expect(u.pathname).toBe("/api/v1/nodes/networks");
        expect(req.headers.authorization).toBe("Bearer t");
        const version = u.searchParams.get("version");
        polls.push(version ?? "-");
        const answer = () => res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(table(current)));
        // Without a version (the agent's fetch for a network it does not know) and when changed: at once.
        if (version !== current) return answer();
        held.add(answer);
      });
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    close = () => {
      for (const a of held) a();
      return new Promise<void>((r) => server.close(() => r()));
    };
    const applied: string[] = [];
    const start = (watchNetworks: boolean) =>
      startHeartbeats({
        ...idleNode(`http://127.0.0.1:${(server.address() as AddressInfo).port}`),
        intervalMs: 60_000,
        networksVersion: () => applied.at(-1),
        onNetworks: async (t) => {
          applied.push((t as { version: string }).version);
        },
        watchNetworks,
      });
    // Heartbeat replies alone (no poll): the first reply's table is applied, the next beat reports it.
    hb = start(false);
    await until(() => applied.at(-1) === "n1");
    await hb.beatNow();
    expect(beats[0]).not.toHaveProperty("networksVersion");
    expect(beats.at(-1)!.networksVersion).toBe("n1");
    expect(polls).toEqual([]);
    await hb.stop();
    // With the long poll: held while unchanged, answered at once on a change.
    hb = start(true);
    await until(() => held.size === 1);
    current = "n2";
    const waiting = [...held];
    held.clear();
    for (const a of waiting) a();
    await until(() => applied.at(-1) === "n2" && held.size === 1);
    expect(polls).toEqual(["n1", "n2"]);
    expect(await hb.fetchNetworks()).toEqual(table("n2"));
    expect(polls.at(-1)).toBe("-");
    await hb.beatNow();
    expect(beats.at(-1)!.networksVersion).toBe("n2");
  });

  it("heartbeatsFromEnv feeds the agent's ingress proxy and reports the version it applied", async () => {
    // An empty table: the wiring is what is tested here (binding is ingress-proxy.spec's job,
    // and the agent's proxy listens on 0.0.0.0, which tests do not use).
    const cp = await controlPlane(() => ({
      status: 200,
      body: {
        nodeId: "n",
        heartbeatMs: 20,
        ...(cp.received.at(-1)!.body.ingressVersion === "v1" ? {} : { ingress: { version: "v1", ports: [] } }),
      },
    }));
    close = cp.close;
    hb = heartbeatsFromEnv(
      { FLOTILLA_API_URL: cp.url, FLOTILLA_API_TOKEN: "t", FLOTILLA_ENGINE_URL: "https://198.18.0.2:2376" },
      { all: () => [] },
      () => {},
      undefined,
      // The kernel data plane would change this host's own iptables: tests use theirs in netns machines.
      { dataPlane: "proxy" },
    )!;
    // The proxy applies the first reply's table beside the beats; from then on they report it.
    await until(() => cp.received.at(-1)?.body.ingressVersion === "v1");
    const first = cp.received.findIndex((r) => r.body.ingressVersion === "v1");
    await until(() => cp.received.length >= first + 3);
    expect(cp.received[0].body).not.toHaveProperty("ingressVersion");
    expect(cp.received.slice(first).map((r) => r.body.ingressVersion)).toEqual(cp.received.slice(first).map(() => "v1"));
    await hb.stop();
  });

  it("stops: no beat after stop(), and beatNow reports connection failures", async () => {
    const cp = await controlPlane(() => ({ status: 200, body: { nodeId: "n", heartbeatMs: 20 } }));
    close = cp.close;
    hb = startHeartbeats({
      apiUrl: cp.url,
      token: "t",
      engineUrl: "https://x:2376",
      intervalMs: 20,
      listContainers: async () => [],
      resources: { nanoCpus: 1, memoryBytes: 1 },
    });
    await until(() => cp.received.length >= 2);
    await hb.stop();
    const count = cp.received.length;
    await new Promise((r) => setTimeout(r, 100));
    expect(cp.received.length).toBe(count);
    await cp.close();
    close = undefined;
    const dead = startHeartbeats({
      apiUrl: cp.url,
      token: "t",
      engineUrl: "https://x:2376",
      intervalMs: 60_000,
      listContainers: async () => [],
      resources: { nanoCpus: 1, memoryBytes: 1 },
    });
    const r = await dead.beatNow();
    await dead.stop();
    expect(r).toMatchObject({ ok: false, error: expect.stringContaining(`${cp.url}/api/v1/nodes/heartbeat: `) });
  });

  it("goes round the API replicas of a comma-separated URL: a refused or 5xx one sends the next beat to the next", async () => {
    const down = await controlPlane(() => ({ status: 503, body: { message: "Postgres is unavailable" } }));
    const up = await controlPlane(() => ({ status: 200, body: { nodeId: "n-1" } }));
    close = async () => {
      await down.close();
      await up.close();
    };
    hb = startHeartbeats({
      apiUrl: `http://127.0.0.1:1, ${down.url}/,${up.url}`,
      token: "flt_secret",
      engineUrl: "https://198.18.0.2:2376",
      intervalMs: 60_000,
      listContainers: async () => [],
      resources: { nanoCpus: 1e9, memoryBytes: 1024 },
    });
    // Refused, then 503, then the replica that answers: at most three beats to get there.
    const results = [await hb.beatNow(), await hb.beatNow(), await hb.beatNow()];
    expect(results.at(-1)).toMatchObject({ ok: true });
    expect(results.filter((r) => r.status === 503)).toHaveLength(1);
    expect(hb.nodeId).toBe("n-1");
    // Once there, beats stay with it.
    const before = [down.received.length, up.received.length];
    expect(await hb.beatNow()).toMatchObject({ ok: true });
    expect([down.received.length, up.received.length]).toEqual([before[0], before[1] + 1]);
  });

  it("follows the replica list a reply names, stays with the replica that answered, and ignores a malformed list", async () => {
    let listed: unknown = undefined;
    const first = await controlPlane(() => ({ status: 200, body: { nodeId: "n-1", ...(listed ? { apiUrls: listed } : {}) } }));
    const second = await controlPlane(() => ({ status: 200, body: { nodeId: "n-1" } }));
    close = async () => {
      await first.close();
      await second.close();
    };
    const adopted: string[][] = [];
    const logs: string[] = [];
    hb = startHeartbeats({
      apiUrl: first.url,
      token: "flt_secret",
      engineUrl: "https://198.18.0.2:2376",
      intervalMs: 60_000,
      listContainers: async () => [],
      resources: { nanoCpus: 1e9, memoryBytes: 1024 },
      onApiUrls: (urls) => adopted.push(urls),
      log: (m) => logs.push(m),
    });
    // Malformed lists change nothing.
    for (const bad of [["ftp://x"], "http://a:1", [1, 2], []]) {
      listed = bad;
      expect(await hb.beatNow()).toMatchObject({ ok: true });
    }
    expect(adopted).toEqual([]);
    expect(logs.join("\n")).toContain('ignoring the control plane\'s replica list: apiUrls: "ftp://x" is not an http:// or https:// URL');
    // A new list: kept once (not again when repeated), and beats stay with the replica that answered.
    listed = [`${second.url}/`, first.url];
    expect(await hb.beatNow()).toMatchObject({ ok: true });
    expect(await hb.beatNow()).toMatchObject({ ok: true });
    expect(adopted).toEqual([[second.url, first.url]]);
    expect([first.received.length, second.received.length]).toEqual([6, 0]);
    expect(adopted).toHaveLength(1);
    // A list that leaves out the replica that answered keeps it (it is reachable), first.
    listed = [second.url];
    expect(await hb.beatNow()).toMatchObject({ ok: true });
    expect(adopted.at(-1)).toEqual([first.url, second.url]);
    // When it stops answering, the next beat goes to the other one of the new list.
    await first.close();
    expect(await hb.beatNow()).toMatchObject({ ok: false });
    expect(await hb.beatNow()).toMatchObject({ ok: true });
    expect(second.received.length).toBe(1);
  });
});

describe("heartbeat retries", () => {
  it("double from the interval up to the cap, never below the interval", () => {
    expect([1, 2, 3, 4, 5, 6].map((n) => retryDelayMs(n, 1000, 8000))).toEqual([1000, 2000, 4000, 8000, 8000, 8000]);
    expect(retryDelayMs(40, 1000, 60_000)).toBe(60_000);
    expect(retryDelayMs(3, 5000, 2000)).toBe(5000);
  });

  it("take the control plane's cap from its reply: its recovery grace counts on it", async () => {
    const cp = await controlPlane(() => ({ status: 200, body: { nodeId: "n", heartbeatMs: 20, maxBackoffMs: 2000 } }));
    const hb = startHeartbeats({
      ...idleNode(cp.url),
      intervalMs: 20,
      maxBackoffMs: 60_000,
    });
    try {
      expect(hb.maxBackoffMs).toBe(60_000);
      await until(() => cp.received.length >= 1 && hb.maxBackoffMs === 2000);
    } finally {
      await hb.stop();
      await cp.close();
    }
  });
});
