// The agent's join (one-time token → its own API token, saved 0600) against a small HTTP server on
// loopback standing in for the control plane's join and heartbeat endpoints.
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import type { Heartbeats } from "../src/heartbeat";
import {
  credentialFromEnv,
  joinControlPlane,
  JoinRefusedError,
  readSavedToken,
  startJoinedHeartbeats,
  TOKEN_FILE,
} from "../src/heartbeat/join";

interface Call {
  path: string;
  auth?: string;
  body: { joinToken?: string; hostname?: string };
}

type Answer = { status: number; body: unknown } | "hang-up";

async function controlPlane(answer: (c: Call, n: number) => Answer, port = 0) {
  const calls: Call[] = [];
  const server: Server = createServer((req, res) => {
    let data = "";
    req.on("data", (c: Buffer) => (data += c.toString()));
    req.on("end", () => {
      const call: Call = { path: req.url ?? "", auth: req.headers.authorization, body: JSON.parse(data || "{}") as Call["body"] };
      calls.push(call);
      const a = answer(call, calls.filter((c) => c.path === call.path).length);
      if (a === "hang-up") return void req.socket.destroy();
      res.writeHead(a.status, { "content-type": "application/json" }).end(JSON.stringify(a.body));
    });
  });
  await new Promise<void>((r) => server.listen(port, "127.0.0.1", r));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return { url, calls, close: () => new Promise<void>((r) => server.close(() => r())) };
}

async function until(cond: () => boolean, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 10));
  }
}

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

// The control plane's side: join tokens trade once for an agent token; heartbeats need it.
const standard =
  (joins: Record<string, string>) =>
  (c: Call): Answer => {
    if (c.path === "/api/v1/nodes/join") {
      const token = joins[c.body.joinToken ?? ""];
      if (!token)
        return {
          status: 401,
          body: { error: "unauthorized", message: "join token is not valid: it is unknown or was replaced by a newer provisioning" },
        };
      delete joins[c.body.joinToken!];
      return { status: 200, body: { token } };
    }
    if (c.path === "/api/v1/nodes/heartbeat") {
      return c.auth?.startsWith("Bearer flt_")
        ? { status: 200, body: { nodeId: "n1", heartbeatMs: 20 } }
        : { status: 401, body: { error: "unauthorized", message: "invalid API token: it is unknown or was revoked" } };
    }
    return { status: 404, body: {} };
  };

describe("agent join", () => {
  const dirs: string[] = [];
  const closers: (() => Promise<void>)[] = [];
  let hb: Heartbeats | undefined;
  afterEach(async () => {
    await hb?.stop();
    hb = undefined;
    for (const c of closers.splice(0)) await c();
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });
  const stateDir = () => {
    const d = mkdtempSync(join(tmpdir(), "flotilla-join-"));
    dirs.push(d);
    return d;
  };
  const beatOptions = (url: string, logs: string[]) => ({
    apiUrl: url,
    engineUrl: "https://198.18.0.2:2376",
    hostname: "devdays",
    intervalMs: 20,
    listContainers: async () => [],
    resources: { nanoCpus: 1, memoryBytes: 1 },
    log: (m: string) => logs.push(m),
  });

  it("reads its credential from the env: an API token by hand wins, a join token otherwise, a partial config is an error", () => {
    expect(credentialFromEnv({})).toBeNull();
    expect(credentialFromEnv({ FLOTILLA_ENGINE_URL: "https://x:2376" })).toBeNull();
    const base = { FLOTILLA_API_URL: "http://127.0.0.1:8080", FLOTILLA_ENGINE_URL: "https://x:2376" };
    expect(credentialFromEnv({ ...base, FLOTILLA_JOIN_TOKEN: "flj_a" })).toEqual({ kind: "join", joinToken: "flj_a" });
    expect(credentialFromEnv({ ...base, FLOTILLA_JOIN_TOKEN: "flj_a", FLOTILLA_API_TOKEN: "flt_b" })).toEqual({
      kind: "token",
      token: "flt_b",
    });
    expect(() => credentialFromEnv({ FLOTILLA_API_URL: "http://127.0.0.1:8080" })).toThrow(
      /missing FLOTILLA_JOIN_TOKEN \(or FLOTILLA_API_TOKEN\), FLOTILLA_ENGINE_URL/,
    );
    expect(() => credentialFromEnv({ FLOTILLA_JOIN_TOKEN: "flj_a", FLOTILLA_ENGINE_URL: "https://x:2376" })).toThrow(
      /missing FLOTILLA_API_URL$/,
    );
  });

  it("joins once, saves the token 0600, heartbeats with it; a restart uses the saved token; a new join token joins again", async () => {
    const joins: Record<string, string> = { flj_one: "flt_first", flj_two: "flt_second" };
    const cp = await controlPlane(standard(joins));
    closers.push(cp.close);
    const dir = stateDir();
    const logs: string[] = [];

    hb = startJoinedHeartbeats({ kind: "join", joinToken: "flj_one" }, dir, beatOptions(cp.url, logs));
    await until(() => cp.calls.some((c) => c.path === "/api/v1/nodes/heartbeat"));
    expect(cp.calls[0]).toEqual({ path: "/api/v1/nodes/join", auth: undefined, body: { joinToken: "flj_one", hostname: "devdays" } });
    expect(cp.calls.find((c) => c.path === "/api/v1/nodes/heartbeat")!.auth).toBe("Bearer flt_first");
    expect(logs).toContain(`joined the control plane at ${cp.url} as devdays`);
    expect(statSync(join(dir, TOKEN_FILE)).mode & 0o777).toBe(0o600);
    expect(readSavedToken(dir)).toMatchObject({ apiUrl: cp.url, token: "flt_first" });
    expect(readFileSync(join(dir, TOKEN_FILE), "utf8")).not.toContain("flj_one");
    await hb.stop();

    // Restart with the same env: no join (the join token is spent), the saved token is used.
    cp.calls.length = 0;
    hb = startJoinedHeartbeats({ kind: "join", joinToken: "flj_one" }, dir, beatOptions(cp.url, logs));
    await until(() => cp.calls.length >= 2);
    expect(cp.calls.every((c) => c.path === "/api/v1/nodes/heartbeat" && c.auth === "Bearer flt_first")).toBe(true);
    await hb.stop();

    // Re-provisioned: a new join token in the env means join again, and the new token is saved.
    cp.calls.length = 0;
    hb = startJoinedHeartbeats({ kind: "join", joinToken: "flj_two" }, dir, beatOptions(cp.url, logs));
    await until(() => cp.calls.some((c) => c.path === "/api/v1/nodes/heartbeat"));
    expect(cp.calls[0].body.joinToken).toBe("flj_two");
    expect(cp.calls.find((c) => c.path === "/api/v1/nodes/heartbeat")!.auth).toBe("Bearer flt_second");
    expect(readSavedToken(dir)!.token).toBe("flt_second");
  });

  it("on a refused join logs the control plane's message and stops trying", async () => {
    const cp = await controlPlane(standard({}));
    closers.push(cp.close);
    const logs: string[] = [];
    hb = startJoinedHeartbeats({ kind: "join", joinToken: "flj_used" }, stateDir(), beatOptions(cp.url, logs));
    expect(await hb.beatNow()).toEqual({ ok: false, error: "not joined to the control plane" });
    expect(logs).toEqual([
      "the control plane refused to join (HTTP 401): join token is not valid: it is unknown or was replaced by a newer provisioning. " +
        "Heartbeats stay off; re-provision the machine (ctl machine provision NAME) for a new join token",
    ]);
    await new Promise((r) => setTimeout(r, 100));
    expect(cp.calls.length).toBe(1);
  });

  it("retries network failures and 5xx with backoff until the control plane answers", async () => {
    const port = await freePort();
    const logs: string[] = [];
    const joining = joinControlPlane({
      apiUrl: `http://127.0.0.1:${port}`,
      joinToken: "flj_x",
      hostname: "devdays",
      log: (m) => logs.push(m),
      initialBackoffMs: 20,
      maxBackoffMs: 40,
    });
    // Nobody listens yet: connection refused, retried.
    await until(() => logs.length >= 1);
    expect(logs[0]).toMatch(
      new RegExp(`^joining the control plane at http://127.0.0.1:${port}/api/v1/nodes/join failed \\(1x\\): ECONNREFUSED; retrying$`),
    );
    const cp = await controlPlane(
      (_c, n) =>
        n === 1 ? { status: 503, body: { message: "database down" } } : n === 2 ? "hang-up" : { status: 200, body: { token: "flt_ok" } },
      port,
    );
    closers.push(cp.close);
    expect(await joining).toBe("flt_ok");
    expect(cp.calls.length).toBe(3);
  });

  it("does not retry a 4xx, and gives up when stopped", async () => {
    const cp = await controlPlane(() => ({ status: 403, body: { message: 'join token was issued for machine "a", not "b"' } }));
    closers.push(cp.close);
    await expect(joinControlPlane({ apiUrl: cp.url, joinToken: "flj_x", hostname: "b", log: () => {} })).rejects.toThrow(JoinRefusedError);
    expect(cp.calls.length).toBe(1);

    const down = await freePort();
    const logs: string[] = [];
    hb = startJoinedHeartbeats({ kind: "join", joinToken: "flj_x" }, stateDir(), beatOptions(`http://127.0.0.1:${down}`, logs));
    await until(() => logs.length >= 1);
    await hb.stop();
    hb = undefined;
    expect(logs).toHaveLength(1);
  });

  it("says why when the control plane refuses a saved token (revoked)", async () => {
    const dir = stateDir();
    const cp = await controlPlane(standard({ flj_one: "flt_first" }));
    closers.push(cp.close);
    const logs: string[] = [];
    hb = startJoinedHeartbeats({ kind: "join", joinToken: "flj_one" }, dir, beatOptions(cp.url, logs));
    await until(() => cp.calls.some((c) => c.path === "/api/v1/nodes/heartbeat"));
    await hb.stop();
    // Revoked meanwhile: the saved token is refused.
    const saved = JSON.parse(readFileSync(join(dir, TOKEN_FILE), "utf8")) as { token: string };
    writeFileSync(join(dir, TOKEN_FILE), JSON.stringify({ ...saved, token: "revoked" }), { mode: 0o600 });
    hb = startJoinedHeartbeats({ kind: "join", joinToken: "flj_one" }, dir, beatOptions(cp.url, logs));
    await until(() => logs.some((l) => l.startsWith("heartbeat failed")));
    expect(logs.find((l) => l.startsWith("heartbeat failed"))).toBe(
      `heartbeat failed (1x): HTTP 401: invalid API token: it is unknown or was revoked — the control plane no longer accepts the token saved in ${join(dir, TOKEN_FILE)} ` +
        "(revoked, or the machine was removed or re-provisioned); re-provision the machine (ctl machine provision NAME) to give the agent a new join token",
    );
  });

  it("uses FLOTILLA_API_TOKEN as given, without joining", async () => {
    const cp = await controlPlane(standard({}));
    closers.push(cp.close);
    hb = startJoinedHeartbeats({ kind: "token", token: "flt_by_hand" }, stateDir(), beatOptions(cp.url, []));
    await until(() => cp.calls.length >= 1);
    expect(cp.calls[0]).toMatchObject({ path: "/api/v1/nodes/heartbeat", auth: "Bearer flt_by_hand" });
  });
});
