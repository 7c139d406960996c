// One-time join tokens against the real API, Postgres and Redis: an agent trades its join token,
// once, before it expires, for its machine, for an `agent` API token that may only heartbeat.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PrismaService } from "../src/database/prisma.service";
import { JoinService } from "../src/join/join.service";
import { startTestApi, type TestApi } from "./support";

describe("agents join with one-time tokens", () => {
  let api: TestApi;
  let joins: JoinService;
  let prisma: PrismaService;

  beforeAll(async () => {
    api = await startTestApi();
    joins = api.running.app.get(JoinService);
    prisma = api.running.app.get(PrismaService);
  });
  afterAll(async () => {
    await api?.stop();
  });

  const join = async (joinToken: string, hostname: string) => {
    const res = await api.fetch("/api/v1/nodes/join", { method: "POST", body: JSON.stringify({ joinToken, hostname }), token: null });
    return { status: res.status, body: (await res.json()) as { token?: string; error?: string; message?: string } };
  };
  const beat = (token: string, hostname: string) =>
    api.fetch("/api/v1/nodes/heartbeat", {
      method: "POST",
      token,
      body: JSON.stringify({
        hostname,
        engineUrl: "https://198.18.0.9:2376",
        resources: { nanoCpus: 1e9, memoryBytes: 1 << 30 },
        labels: {},
        containers: [],
      }),
    });
  const machine = (name: string) => prisma.machine.create({ data: { name, driver: "netns", state: "PROVISIONING" } });

  it("trades a join token once for an agent token that heartbeats; the join is a step of the machine's progress", async () => {
    const m = await machine("j1");
    const { token: joinToken, expiresAt } = await joins.issue("j1");
    expect(joinToken).toMatch(/^flj_[A-Za-z0-9_-]{43}$/);
    expect(expiresAt.getTime() - Date.now()).toBeGreaterThan(59 * 60_000);
    // Stored hashed only.
    expect(JSON.stringify(await prisma.joinToken.findMany())).not.toContain(joinToken);

    const first = await join(joinToken, "j1");
    expect(first.status).toBe(200);
    expect(first.body.token).toMatch(/^flt_/);
    const agentToken = first.body.token!;
    const tokens = (await (await api.fetch("/api/v1/tokens")).json()) as { name: string; role: string }[];
    expect(tokens.find((t) => t.name === "agent-j1")).toMatchObject({ role: "agent" });

    const res = await beat(agentToken, "j1");
    expect(res.status).toBe(200);

    const again = await join(joinToken, "j1");
    expect(again.status).toBe(401);
    expect(again.body).toMatchObject({
      error: "unauthorized",
      message: expect.stringMatching(/^join token was already used \(at .+\); re-provision the machine for a new one$/),
    });

    const progress = await prisma.event.findFirst({ where: { subjectId: m.id, action: "progress" } });
    expect(progress?.data).toMatchObject({ step: "agent joined", message: "the agent on j1 joined the control plane" });

    // The API shows that the agent joined and, once its node is linked, which node it is.
    const deadline = Date.now() + 10_000;
    let view: { agentJoinedAt: string | null; node: { hostname: string; status: string } | null };
    for (;;) {
      view = (await (await api.fetch("/api/v1/machines/j1")).json()) as typeof view;
      if (view.node || Date.now() > deadline) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(view.agentJoinedAt).not.toBeNull();
    expect(view.node).toMatchObject({ hostname: "j1", status: "ready" });
  });

  it("refuses unknown, expired and replaced tokens, and tokens of another machine, with clear messages", async () => {
    expect(await join("flj_nope", "x")).toMatchObject({
      status: 401,
      body: { message: "join token is not valid: it is unknown or was replaced by a newer provisioning" },
    });

    const expired = await joins.issue("j2", -1000);
    const r = await join(expired.token, "j2");
    expect(r.status).toBe(401);
    expect(r.body.message).toBe(`join token expired at ${expired.expiresAt.toISOString()}; re-provision the machine for a new one`);

    // Re-provisioning issues a new token; the unused older one stops working.
    const older = await joins.issue("j3");
    const newer = await joins.issue("j3");
    expect((await join(older.token, "j3")).status).toBe(401);

    // The wrong host is refused without spending the token: the right one can still join.
    const wrong = await join(newer.token, "j1");
    expect(wrong).toMatchObject({ status: 403, body: { error: "forbidden", message: 'join token was issued for machine "j3", not "j1"' } });
    expect((await join(newer.token, "j3")).status).toBe(200);

    const bad = await api.fetch("/api/v1/nodes/join", { method: "POST", body: JSON.stringify({ hostname: "j3" }), token: null });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { details: { field: string } }).details.field).toBe("joinToken");
  });

  it("gives agent tokens heartbeats for their own machine only", async () => {
    const { token } = (await join((await joins.issue("j4")).token, "j4")).body;
    const forbidden = async (method: string, path: string, body?: unknown) => {
      const res = await api.fetch(path, { method, token, ...(body ? { body: JSON.stringify(body) } : {}) });
      return { status: res.status, body: (await res.json()) as { error: string; message: string } };
    };
    expect(await forbidden("GET", "/api/v1/services")).toEqual({
      status: 403,
      body: {
        error: "forbidden",
        message:
          "an agent token may not call GET /api/v1/services; agents may only send heartbeats and read the ingress and network tables",
        details: {},
      },
    });
    for (const [method, path, body] of [
      ["GET", "/api/v1/tokens"],
      ["POST", "/api/v1/tokens", { name: "mine" }],
      ["GET", "/api/v1/machines/j4"],
      ["DELETE", "/api/v1/nodes/j4"],
      ["POST", "/api/v1/services", { name: "x", image: "busybox" }],
    ] as const) {
      expect([method, path, (await forbidden(method, path, body)).status]).toEqual([method, path, 403]);
    }
    // Not as another node either.
    const other = await beat(token!, "j1");
    expect(other.status).toBe(403);
    expect(((await other.json()) as { message: string }).message).toBe('agent token "agent-j4" may not report as "j1"');
    expect((await beat(token!, "j4")).status).toBe(200);
    // The mesh's long poll is an agent's too.
    expect((await api.fetch("/api/v1/nodes/ingress?waitMs=0", { token })).status).toBe(200);
    // So is its own node's overlay table (the node is the token's), never another node's.
    const own = await api.fetch("/api/v1/nodes/networks?waitMs=0", { token });
    expect(own.status).toBe(200);
    expect(await own.json()).toMatchObject({ version: expect.any(String), networks: [] });
    expect((await api.fetch("/api/v1/nodes/networks?waitMs=0&node=j4", { token })).status).toBe(200);
    expect((await api.fetch("/api/v1/nodes/networks?waitMs=0&node=j1", { token })).status).toBe(403);
  });

  it("finds a long hostname's node from its agent token (a digest past 46 characters), and only that node", async () => {
    const prefix = "long-".padEnd(46, "x");
    const [a, b] = [`${prefix}-first-machine-with-a-long-name`, `${prefix}-second-machine-with-a-long-name`];
    const tokens: string[] = [];
    for (const host of [a, b]) {
      const token = (await join((await joins.issue(host)).token, host)).body.token!;
      expect((await beat(token, host)).status).toBe(200);
      tokens.push(token);
    }
    const own = await api.fetch("/api/v1/nodes/networks?waitMs=0", { token: tokens[0] });
    expect(own.status).toBe(200);
    expect((await api.fetch(`/api/v1/nodes/networks?waitMs=0&node=${a}`, { token: tokens[0] })).status).toBe(200);
    expect((await api.fetch(`/api/v1/nodes/networks?waitMs=0&node=${b}`, { token: tokens[0] })).status).toBe(403);
  });

  it("replaces the agent's token when it joins again after a re-provisioning; a race spends the token once", async () => {
    const first = (await join((await joins.issue("j5")).token, "j5")).body.token!;
    const second = (await join((await joins.issue("j5")).token, "j5")).body.token!;
    expect((await beat(first, "j5")).status).toBe(401);
    expect((await beat(second, "j5")).status).toBe(200);

    const { token } = await joins.issue("j6");
    const results = await Promise.all([join(token, "j6"), join(token, "j6"), join(token, "j6")]);
    expect(results.map((r) => r.status).sort()).toEqual([200, 401, 401]);
  });

  it("documents the join in OpenAPI, without a bearer token", async () => {
    const doc = (await (await api.fetch("/api/docs-json")).json()) as {
      paths: Record<string, { post?: { security?: unknown; summary: string } }>;
    };
    const op = doc.paths["/api/v1/nodes/join"]?.post;
    expect(op?.summary).toContain("one-time join token");
    expect(op?.security).toBeUndefined();
  });
});
