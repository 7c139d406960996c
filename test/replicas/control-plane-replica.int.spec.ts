// End to end: `ctl node promote --control-plane` on a netns machine made with `ctl machine create`.
// The control-plane bundle is built and installed over the machine's SSH; its API replica, inside
// the machine's network namespace, reaches the test's Postgres and Redis through relays on the
// bridge's gateway (as a machine reaches its host), answers as the main API does, takes a write
// the main API sees, carries ctl when the main API is stopped, and `ctl node demote` removes it.
// Traffic stays on loopback and in 198.19.244.0/24, on a bridge this test makes. It builds one
// machine only, so it runs in the integration project beside other files rather than in the
// one-at-a-time e2e project (whose files add up to most of CI's time).
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, renameSync, rmSync, statSync } from "node:fs";
import type { Server } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import type { ControlPlaneReplicaView, ControlPlaneView, NodeView } from "@flotilla/api-types";
import { startTestApiOn, type TestApi } from "../../apps/api/test/support";
import { start, type Running } from "../../apps/api/src/bootstrap";
import { createTestDatabase, type TestDatabase } from "../support/database";
import { testStack } from "../support/stack";
import { until } from "../support/until";
import { addBridge, forward, removeLeftovers, run, useMachinesEnv } from "../e2e/support";
import { testBridge } from "../support/leftovers";

const repo = resolve(__dirname, "../..");
const root = process.getuid?.() === 0;
const tag = process.pid.toString(36);
const BRIDGE = testBridge("flcp");
const GATEWAY = "198.19.244.1";
const NAME = `cp-${tag}`;

/** `url` with its host and port replaced: the machine reaches the relay on the gateway. */
const via = (url: string, port: number) => {
  const u = new URL(url);
  u.hostname = GATEWAY;
  u.port = String(port);
  return u.toString();
};

describe.skipIf(!root)("control-plane replica on a manager machine, end to end (netns)", () => {
  const base = mkdtempSync(join(tmpdir(), "flotilla-e2e-cpreplica-"));
  const bundle = join(base, "flotilla-control-plane.tar.gz");
  const apiPort = 29000 + (process.pid % 400);
  const [pgRelay, redisRelay] = [apiPort + 400, apiPort + 401];
  let db: TestDatabase;
  let api: TestApi;
  let restarted: Running | undefined;
  let relays: Server[] = [];
  let restoreEnv: (() => void) | undefined;
  let env: Record<string, string | undefined>;
  const saved = { ...process.env };

  const ctl = (args: string[], extra: Record<string, string | undefined> = {}) =>
    run(process.execPath, ["--import", "tsx", join(repo, "apps/ctl/src/main.ts"), ...args], { ...env, ...extra }, 300_000);
  const get = async <T>(base: string, path: string): Promise<T> => {
    const res = await fetch(base + path, { headers: { authorization: `Bearer ${api.token}` } });
    if (!res.ok) throw new Error(`GET ${base}${path}: ${res.status} ${await res.text()}`);
    return (await res.json()) as T;
  };

  beforeAll(async () => {
    execFileSync(process.execPath, [join(repo, "scripts", "build-control-plane-bundle.mjs"), "--out", bundle], { stdio: "ignore" });
    addBridge(BRIDGE, GATEWAY);
    db = await createTestDatabase();
    relays = [await forward(GATEWAY, pgRelay, testStack.pgPort), await forward(GATEWAY, redisRelay, testStack.redisPort)];
    restoreEnv = useMachinesEnv(base, `http://${GATEWAY}:${apiPort}`);
    process.env.FLOTILLA_CONTROL_PLANE_BUNDLE = bundle;
    process.env.FLOTILLA_REPLICA_DATABASE_URL = via(db.url, pgRelay);
    process.env.FLOTILLA_REPLICA_REDIS_URL = via(inject("redisUrl"), redisRelay);
    api = await startTestApiOn(db, inject("redisUrl"), { FLOTILLA_AGENT_LISTEN: `${GATEWAY}:${apiPort}`, FLOTILLA_HEARTBEAT_MS: "1000" });
    env = {
      PATH: process.env.PATH,
      HOME: join(base, "home"),
      FLOTILLA_CONFIG_DIR: api.config.configDir,
      TSX_TSCONFIG_PATH: join(repo, "apps/ctl/tsconfig.json"),
    };
    const made = await ctl(["machine", "create", "-d", "netns", "--netns-cidr", `${GATEWAY}/24`, "--netns-bridge", BRIDGE, NAME]);
    expect(made.code, made.stderr).toBe(0);
    await until(
      "the machine's node to be ready",
      async () => (await get<NodeView>(api.url, `/api/v1/nodes/${NAME}`)).status === "ready",
      60_000,
    );
  }, 400_000);

  afterAll(async () => {
    const live = restarted ? { url: restarted.url! } : api;
    await ctl(["machine", "rm", "-f", "-y", NAME], { FLOTILLA_URL: live.url }).catch(() => undefined);
    await restarted?.close();
    if (!restarted) await api?.running.close();
    await db?.drop();
    for (const r of relays) r.close();
    restoreEnv?.();
    for (const k of ["FLOTILLA_CONTROL_PLANE_BUNDLE", "FLOTILLA_REPLICA_DATABASE_URL", "FLOTILLA_REPLICA_REDIS_URL"]) {
      if (saved[k] === undefined) delete process.env[k];
      else process.env[k] = saved[k];
    }
    removeLeftovers([NAME], BRIDGE);
    rmSync(base, { recursive: true, force: true });
  }, 120_000);

  it("refuses a worker node and a missing bundle, naming why, and changes nothing", async () => {
    const worker = await api.fetch(`/api/v1/nodes/${NAME}/control-plane`, { method: "POST" });
    expect(worker.status).toBe(409);
    expect(((await worker.json()) as { message: string }).message).toMatch(/is a worker: only managers run the control plane/);
    expect((await ctl(["node", "update", "--role", "manager", NAME])).code).toBe(0);
    renameSync(bundle, `${bundle}.away`);
    try {
      const missing = await api.fetch(`/api/v1/nodes/${NAME}/control-plane`, { method: "POST" });
      expect(missing.status).toBe(503);
      expect(((await missing.json()) as { message: string }).message).toMatch(
        /bundle .* is missing: build it with npm run build:control-plane-bundle/,
      );
    } finally {
      renameSync(`${bundle}.away`, bundle);
    }
    expect(await get<ControlPlaneReplicaView[]>(api.url, "/api/v1/control-plane/replicas")).toEqual([]);
    expect((await get<{ state: string }>(api.url, `/api/v1/machines/${NAME}`)).state).toBe("READY");
  });

  it("fails the installation on a machine whose SSH refuses, naming the step; the machine stays ready", async () => {
    // The machine's sshd refuses every connection from now on (its agent keeps running).
    const rule = [
      "netns",
      "exec",
      `flt-${NAME}`,
      "iptables",
      "-I",
      "INPUT",
      "-p",
      "tcp",
      "--dport",
      "22",
      "-j",
      "REJECT",
      "--reject-with",
      "tcp-reset",
    ];
    execFileSync("ip", rule);
    try {
      const promoted = await ctl(["node", "promote", "--control-plane", NAME]);
      expect(promoted.code).toBe(1);
      expect(promoted.stderr).toMatch(/control-plane-add \S+ failed: control plane \S+: ssh: ssh 198\.19\.244\.\d+:22: connection refused/);
    } finally {
      execFileSync(
        "ip",
        rule.map((a) => (a === "-I" ? "-D" : a)),
      );
    }
    const [replica] = await get<ControlPlaneReplicaView[]>(api.url, "/api/v1/control-plane/replicas");
    expect(replica).toMatchObject({ machine: NAME, state: "failed", message: expect.stringMatching(/ssh/) });
    expect((await get<ControlPlaneView>(api.url, "/api/v1/control-plane")).apiUrls).toEqual([]);
    expect((await get<{ state: string }>(api.url, `/api/v1/machines/${NAME}`)).state).toBe("READY");
  }, 120_000);

  let replicaUrl = "";
  it("promote --control-plane installs an API replica that answers like the main API and joins the lists", async () => {
    const promoted = await ctl(["node", "promote", "--control-plane", NAME]);
    expect(promoted.code, promoted.stderr).toBe(0);
    replicaUrl = promoted.stdout.trim();
    expect(replicaUrl).toMatch(/^http:\/\/198\.19\.244\.\d+:8080$/);
    const [replica] = await get<ControlPlaneReplicaView[]>(api.url, "/api/v1/control-plane/replicas");
    expect(replica).toMatchObject({ machine: NAME, node: NAME, apiUrl: replicaUrl, state: "running" });

    // Its process runs the api role alone, with the bundle's runtime, in the machine's namespace.
    expect(await (await fetch(`${replicaUrl}/api/v1/health`)).json()).toMatchObject({ status: "ok", role: "api" });
    // Both list the replica: ctl, the console and agents fail over along these.
    for (const at of [api.url, replicaUrl]) {
      const lists = await get<ControlPlaneView>(at, "/api/v1/control-plane");
      expect(lists.apiUrls).toContain(replicaUrl);
      expect(lists.agentApiUrls).toEqual([`http://${GATEWAY}:${apiPort}`, replicaUrl]);
    }
    // A console served by the main API may call the replica from a browser, and the other way round.
    const preflight = await fetch(`${replicaUrl}/api/v1/services`, {
      method: "OPTIONS",
      headers: { origin: replicaUrl, "access-control-request-method": "POST" },
    });
    expect(preflight.headers.get("access-control-allow-origin")).toBe(replicaUrl);

    // The shared state landed 0600 (the machine's /var/lib/flotilla-agent is its store's root/).
    const cp = join(base, "data", "machines", NAME, "root", "flotilla", "control-plane");
    for (const f of ["etc/secrets.key", "etc/control-plane.env", "data/certs/control-plane-key.pem"])
      expect((statSync(join(cp, f)).mode & 0o777).toString(8), f).toBe("600");
    expect(existsSync(join(cp, "data/certs/ca.pem"))).toBe(true);
    expect(existsSync(join(cp, "data/certs/ca-key.pem"))).toBe(false);

    // Same answers, and a write through the replica (a service, and a secret sealed with the
    // shared key) is the main API's too.
    expect(await get(replicaUrl, "/api/v1/services")).toEqual(await get(api.url, "/api/v1/services"));
    const created = await fetch(`${replicaUrl}/api/v1/services`, {
      method: "POST",
      headers: { authorization: `Bearer ${api.token}`, "content-type": "application/json" },
      body: JSON.stringify({ name: "via-replica", image: "busybox", replicas: 0 }),
    });
    expect(created.status, await created.clone().text()).toBe(201);
    const names = (await get<{ name: string }[]>(api.url, "/api/v1/services")).map((s) => s.name);
    expect(names).toContain("via-replica");
    expect(await get(replicaUrl, "/api/v1/services")).toEqual(await get(api.url, "/api/v1/services"));
    // What needs the CA key is refused on the replica with the reason, not done with a new CA.
    const env = await fetch(`${replicaUrl}/api/v1/machines/${NAME}/env`, { headers: { authorization: `Bearer ${api.token}` } });
    expect(env.status).toBe(503);
    expect(((await env.json()) as { message: string }).message).toMatch(/CA certificate without its key/);
    // Only managers run the control plane: a role change alone may not leave it running.
    const demoteAlone = await api.fetch(`/api/v1/nodes/${NAME}`, { method: "PATCH", body: JSON.stringify({ role: "worker" }) });
    expect(demoteAlone.status).toBe(409);
  }, 300_000);

  it("ctl fails over to the replica when the main API is stopped", async () => {
    // login saves the replicas the control plane lists after the URL given.
    const login = await ctl(["login", "--url", api.url, "--token", api.token]);
    expect(login.code, login.stderr).toBe(0);
    expect(login.stderr).toContain(replicaUrl);
    // The agent learns the replica from a heartbeat reply: only once it has may the main API go
    // away (in one CI run it went first, and the agent had nowhere else to beat).
    const agentLog = join(base, "data", "machines", NAME, "root", "flotilla", "agent.log");
    const agentSays = () => (existsSync(agentLog) ? readFileSync(agentLog, "utf8") : "");
    await until(
      "the agent to learn the replica from a heartbeat reply",
      async () => /replicas are now/.test(agentSays()) && agentSays().includes(replicaUrl),
      20_000,
      async () => agentSays().split("\n").slice(-8),
    );
    // No table it was sent was refused (in one CI run each one named nodeAddress "", every second).
    expect(
      agentSays()
        .split("\n")
        .filter((l) => l.includes("not applied")),
    ).toEqual([]);
    await api.running.close();
    const closedAt = Date.now();
    const ls = await ctl(["service", "ls"]);
    expect(ls.code, ls.stderr).toBe(0);
    expect(ls.stdout).toContain("via-replica");
    // The machine's agent learnt the replica from heartbeat replies and now beats there.
    await until(
      "the agent's heartbeats to reach the replica",
      async () => Date.parse((await get<NodeView>(replicaUrl, `/api/v1/nodes/${NAME}`)).lastHeartbeatAt ?? "") > closedAt + 1000,
      60_000,
    );
    // The main API comes back (its workers run machine jobs: the replica runs the api role only).
    restarted = await start(api.config, { logger: false });
  }, 120_000);

  it("demote stops and removes the replica and its files, then makes the node a worker", async () => {
    const demoted = await ctl(["node", "demote", NAME], { FLOTILLA_URL: restarted!.url });
    expect(demoted.code, demoted.stderr).toBe(0);
    expect(await get<ControlPlaneReplicaView[]>(restarted!.url!, "/api/v1/control-plane/replicas")).toEqual([]);
    expect((await get<ControlPlaneView>(restarted!.url!, "/api/v1/control-plane")).apiUrls).not.toContain(replicaUrl);
    expect((await get<NodeView>(restarted!.url!, `/api/v1/nodes/${NAME}`)).role).toBe("worker");
    await expect(fetch(`${replicaUrl}/api/v1/health`, { signal: AbortSignal.timeout(5000) })).rejects.toThrow();
    expect(existsSync(join(base, "data", "machines", NAME, "root", "flotilla", "control-plane", "etc"))).toBe(false);
    expect(existsSync(join(base, "data", "machines", NAME, "root", "flotilla", "control-plane", "opt"))).toBe(false);
  }, 120_000);

  it("demote --force forgets the replica of a machine that is stopped", async () => {
    const live = { FLOTILLA_URL: restarted!.url };
    const promoted = await ctl(["node", "promote", "--control-plane", NAME], live);
    expect(promoted.code, promoted.stderr).toBe(0);
    const stopped = await ctl(["machine", "stop", NAME], live);
    expect(stopped.code, stopped.stderr).toBe(0);
    const demoted = await ctl(["node", "demote", "--force", NAME], live);
    expect(demoted.code, demoted.stderr).toBe(0);
    expect(demoted.stderr).toMatch(/ignoring \(--force\)/);
    expect(await get<ControlPlaneReplicaView[]>(restarted!.url!, "/api/v1/control-plane/replicas")).toEqual([]);
    expect((await get<NodeView>(restarted!.url!, `/api/v1/nodes/${NAME}`)).role).toBe("worker");
    expect((await get<{ state: string }>(restarted!.url!, `/api/v1/machines/${NAME}`)).state).toBe("STOPPED");
  }, 180_000);
});
