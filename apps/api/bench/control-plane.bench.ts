// Control-plane bench: BENCH_NODES simulated agents (default 1,000) heartbeating every
// FLOTILLA_HEARTBEAT_MS, then BENCH_REPLICAS replicas (default 30,000, in BENCH_SERVICES
// services). Reports the time until every task is RUNNING and the API's latency (p50/p99) for
// listing requests made during it. Goal: all running in < 60 s.
//
// Runs the *built* API (`node apps/api/dist/main.js`): tsx does not emit the decorator metadata
// NestJS needs. Postgres and Redis are the integration tests' stack (started if needed).
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import pg from "pg";
import { adminUrl, redisUrl, repoRoot, stack } from "../../../test/support/stack";
import { deployMigrations } from "../../../test/support/migrations";
import { SimAgent } from "../../../test/support/sim-agent";

const NODES = Number(process.env.BENCH_NODES ?? 1000);
const REPLICAS = Number(process.env.BENCH_REPLICAS ?? 30_000);
const SERVICES = Number(process.env.BENCH_SERVICES ?? 30);
const HEARTBEAT_MS = Number(process.env.FLOTILLA_HEARTBEAT_MS ?? 5000);
const GOAL_MS = 60_000;

const freePort = () =>
  new Promise<number>((resolve) => {
    const s = createServer().listen(0, "127.0.0.1", () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => resolve(p));
    });
  });

function percentile(xs: number[], p: number): number {
  if (!xs.length) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
}

async function main(): Promise<void> {
  stack("up");
  const db = `flotilla_bench_${randomBytes(4).toString("hex")}`;
  const admin = new pg.Client({ connectionString: adminUrl() });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${db}`);
  await deployMigrations(adminUrl(db));

  const port = await freePort();
  const configDir = mkdtempSync(join(tmpdir(), "flotilla-bench-"));
  const url = `http://127.0.0.1:${port}`;
  const api: ChildProcess = spawn(process.execPath, [join(repoRoot, "apps/api/dist/main.js"), "all"], {
    env: {
      ...process.env,
      DATABASE_URL: adminUrl(db),
      REDIS_URL: redisUrl(),
      FLOTILLA_PORT: String(port),
      FLOTILLA_CONFIG_DIR: configDir,
      FLOTILLA_QUEUE_PREFIX: `bench${randomBytes(3).toString("hex")}`,
      FLOTILLA_HEARTBEAT_MS: String(HEARTBEAT_MS),
      FLOTILLA_LOG_LEVEL: process.env.FLOTILLA_LOG_LEVEL ?? "warn",
    },
    stdio: ["ignore", "inherit", "inherit"],
    // Its own process group: a signal meant for the bench's terminal does not reach it first.
    detached: true,
  });
  const agents: SimAgent[] = [];
  try {
    // The first start writes the admin token just after it starts listening.
    for (let i = 0; i < 150 && !existsSync(join(configDir, "config.json")); i++) await new Promise((r) => setTimeout(r, 200));
    const token = (JSON.parse(readFileSync(join(configDir, "config.json"), "utf8")) as { token: string }).token;
    const call = async (method: string, path: string, body?: unknown) => {
      const res = await fetch(url + path, { method, headers: { authorization: `Bearer ${token}`, "content-type": "application/json" }, ...(body ? { body: JSON.stringify(body) } : {}) });
      if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${await res.text()}`);
      return res.json() as Promise<unknown>;
    };

    let t0 = Date.now();
    for (let i = 1; i <= NODES; i++) {
      agents.push(await new SimAgent({ hostname: `bench-${i}`, apiUrl: url, token, heartbeatMs: HEARTBEAT_MS, images: ["busybox:latest"], labels: { zone: `z${i % 3}` }, memoryBytes: 64 * 1024 ** 3, nanoCpus: 64e9 }).start());
    }
    console.error(`${NODES} nodes registered in ${Date.now() - t0} ms`);

    // Listing latency while the control plane works (what ctl and the console feel).
    const latencies: number[] = [];
    const failures: string[] = [];
    let probing = true;
    const probe = (async () => {
      while (probing) {
        const s = Date.now();
        await call("GET", "/api/v1/services").then(
          () => latencies.push(Date.now() - s),
          (e: Error) => failures.push(e.message.slice(0, 200)),
        );
        await new Promise((r) => setTimeout(r, 100));
      }
    })();

    t0 = Date.now();
    const per = Math.ceil(REPLICAS / SERVICES);
    for (let i = 1; i <= SERVICES; i++) {
      await call("POST", "/api/v1/services", { name: `svc-${i}`, image: "busybox", replicas: Math.min(per, REPLICAS - per * (i - 1)), placement: { preferences: [{ spread: "node.labels.zone" }] }, resources: { reservations: { memoryBytes: 16 * 1024 ** 2 } } });
    }
    let last = "";
    for (;;) {
      const list = (await call("GET", "/api/v1/services").catch(() => [])) as { running: number; desired: number }[];
      const running = list.reduce((n, s) => n + s.running, 0);
      const line = `${Math.round((Date.now() - t0) / 1000)}s: ${running}/${REPLICAS} running`;
      if (line !== last) console.error(line);
      last = line;
      if (running >= REPLICAS) break;
      if (Date.now() - t0 > 10 * GOAL_MS) throw new Error(`gave up: ${line}`);
      await new Promise((r) => setTimeout(r, 1000));
    }
    const elapsed = Date.now() - t0;
    probing = false;
    await probe;
    const containers = agents.reduce((n, a) => n + a.running().length, 0);
    console.log(
      JSON.stringify({
        nodes: NODES,
        replicas: REPLICAS,
        services: SERVICES,
        allRunningMs: elapsed,
        goalMs: GOAL_MS,
        goalMet: elapsed < GOAL_MS,
        containersRunning: containers,
        apiFailures: failures.length,
        firstFailure: failures[0],
        apiLatencyMs: { requests: latencies.length, p50: percentile(latencies, 50), p99: percentile(latencies, 99), max: Math.max(...latencies) },
      }),
    );
  } finally {
    await Promise.all(agents.map((a) => a.stop()));
    api.kill("SIGTERM");
    await new Promise((r) => api.once("exit", r));
    await admin.query(`DROP DATABASE IF EXISTS ${db} WITH (FORCE)`);
    await admin.end();
  }
}

main().then(
  () => process.exit(0),
  (e: Error) => {
    console.error(`bench failed: ${e.stack ?? e.message}`);
    process.exit(1);
  },
);
