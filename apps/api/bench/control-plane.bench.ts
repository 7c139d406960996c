// Control-plane bench: --nodes simulated agents (BENCH_NODES; default 1,000) heartbeating every
// FLOTILLA_HEARTBEAT_MS, then --replicas replicas (BENCH_REPLICAS; default 30,000, in --services
// / BENCH_SERVICES services). Reports the time until every task is RUNNING (and its ratio to the
// goal), the API's latency (p50/p99) for listing requests made during it from a client process
// of its own (listing-probe.mjs), the agents' heartbeat round trips (the agents run in
// BENCH_AGENT_PROCESSES processes of their own, default 4: sim-fleet.ts), the API process's CPU
// time, containers beyond the replicas (duplicates) and nodes not ready at the end (none went
// down for real: every agent beats throughout). Goal: all
// running in < 60 s; with more than 30,000 replicas (issue 17's 5,000 nodes / 150,000), < 90 s.
//
// BENCH_GIVE_UP_MS (default 10× the goal): past it the figures are reported anyway, allRunningMs null
// and runningAtGiveUp saying how far it got.
//
// Runs the *built* API (`node apps/api/dist/main.js`), as an API process and BENCH_WORKERS
// worker processes (default 1; BENCH_LAYOUT=all: one process with both roles): tsx does not
// emit the decorator metadata NestJS needs. Postgres and Redis are the integration tests' stack (started if needed).
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { parseArgs } from "node:util";
import pg from "pg";
import { adminUrl, redisUrl, repoRoot, stack, testStack } from "../../../test/support/stack";
import { deployMigrations } from "../../../test/support/migrations";
import { startFleets, type Fleets } from "./fleets";
import { dropKeys } from "../../../test/support/redis-keys";
import { controlPlaneNodeArgs, cpuReferenceMs, cpuSeconds, latencySummary, loadAverage, pidFromFile, treeCpuSeconds } from "./measure";
import { agentTokenName } from "../src/auth/roles";
import { hashToken, newTokenSecret } from "../src/auth/tokens";

const { values: args } = parseArgs({
  options: { nodes: { type: "string" }, replicas: { type: "string" }, services: { type: "string" }, json: { type: "boolean" } },
  strict: true,
});
function count(name: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new Error(`invalid ${name}: must be a whole number ≥ 1 (got '${value}')`);
  return n;
}
const NODES = count("--nodes", args.nodes ?? process.env.BENCH_NODES, 1000);
const REPLICAS = count("--replicas", args.replicas ?? process.env.BENCH_REPLICAS, 30_000);
const SERVICES = count("--services", args.services ?? process.env.BENCH_SERVICES, 30);
const HEARTBEAT_MS = Number(process.env.FLOTILLA_HEARTBEAT_MS ?? 5000);
const GOAL_MS = REPLICAS > 30_000 ? 90_000 : 60_000;
const REGISTER_CONCURRENCY = 50;
// How long to wait for convergence before giving up (a profiling run needs no more than a minute or two).
const GIVE_UP_MS = count("BENCH_GIVE_UP_MS", process.env.BENCH_GIVE_UP_MS, 10 * GOAL_MS);
const API_NODE_ARGS = controlPlaneNodeArgs();
const LAYOUT = process.env.BENCH_LAYOUT ?? "split";
if (LAYOUT !== "split" && LAYOUT !== "all") throw new Error(`invalid BENCH_LAYOUT: split or all (got '${LAYOUT}')`);
// Worker processes beside the API (split layout): replicas share the queues' jobs.
const WORKERS = count("BENCH_WORKERS", process.env.BENCH_WORKERS, 1);
// Processes the simulated agents are split between (sim-fleet.ts). With 2,500 agents in each of
// two, most beats over 700 ms came in bursts when an agent process had stalled 250-700 ms (its
// garbage collections, on cores the control plane also needs) while the API took under 270 ms
// over them; a process of 1,250 stalls less, and for fewer agents.
// What listing-probe.mjs prints once its untimed warm-up request is answered.
const PROBE_READY = "ready\n";
const AGENT_PROCESSES = count("BENCH_AGENT_PROCESSES", process.env.BENCH_AGENT_PROCESSES, 4);

const freePort = () =>
  new Promise<number>((resolve) => {
    const s = createServer().listen(0, "127.0.0.1", () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => resolve(p));
    });
  });

async function main(): Promise<void> {
  stack("up");
  const db = `flotilla_bench_${randomBytes(4).toString("hex")}`;
  const admin = new pg.Client({ connectionString: adminUrl() });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${db}`);
  await deployMigrations(adminUrl(db));

  const port = await freePort();
  const configDir = mkdtempSync(join(tmpdir(), "flotilla-bench-"));
  const queuePrefix = `bench${randomBytes(3).toString("hex")}`;
  const url = `http://127.0.0.1:${port}`;
  const env = {
    ...process.env,
    DATABASE_URL: adminUrl(db),
    REDIS_URL: redisUrl(),
    FLOTILLA_PORT: String(port),
    FLOTILLA_CONFIG_DIR: configDir,
    FLOTILLA_QUEUE_PREFIX: queuePrefix,
    FLOTILLA_HEARTBEAT_MS: String(HEARTBEAT_MS),
    FLOTILLA_LOG_LEVEL: process.env.FLOTILLA_LOG_LEVEL ?? "warn",
  };
  const spawnRole = (role: string): ChildProcess =>
    spawn(process.execPath, [...API_NODE_ARGS, join(repoRoot, "apps/api/dist/main.js"), role], {
      env,
      // The API logs to our stderr: stdout carries only the figures, the JSON last.
      stdio: ["ignore", process.stderr, "inherit"],
      // Its own process group: a signal meant for the bench's terminal does not reach it first.
      detached: true,
    });
  // The production layout: the API (requests, heartbeats) and a worker (reconcile, dispatch) in
  // their own processes, so listings and heartbeats do not wait behind dispatch. BENCH_LAYOUT=all
  // runs both roles in one process, as `./setup.sh start` does.
  const api = spawnRole(LAYOUT === "all" ? "all" : "api");
  const processes = [api];
  let fleets: Fleets | undefined;
  try {
    // The first start writes the admin token just after it starts listening.
    for (let i = 0; i < 150 && !existsSync(join(configDir, "config.json")); i++) await new Promise((r) => setTimeout(r, 200));
    const token = (JSON.parse(readFileSync(join(configDir, "config.json"), "utf8")) as { token: string }).token;
    // The worker once the API wrote the shared configuration (the secrets key, the CA) it reads.
    if (LAYOUT === "split") for (let i = 0; i < WORKERS; i++) processes.push(spawnRole("worker"));
    const call = async (method: string, path: string, body?: unknown) => {
      const res = await fetch(url + path, {
        method,
        headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
        ...(body ? { body: JSON.stringify(body) } : {}),
      }).catch((e: Error) => {
        // fetch's own message ("fetch failed") hides what happened on the connection.
        throw new Error(`${method} ${path}: ${e.message}: ${String((e.cause as Error | undefined)?.message ?? e.cause)}`);
      });
      if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${await res.text()}`);
      return res.json() as Promise<unknown>;
    };

    // The agents, in AGENT_PROCESSES processes of their own (sim-fleet.ts), join concurrently, as
    // a fleet booting does: REGISTER_CONCURRENCY first beats in flight at a time in all.
    fleets = startFleets({
      processes: AGENT_PROCESSES,
      nodes: NODES,
      apiUrl: url,
      token,
      heartbeatMs: HEARTBEAT_MS,
      registerConcurrency: REGISTER_CONCURRENCY,
    });
    // Where the machine's two cores went, per phase: on one machine the simulated fleet, the
    // stores and the control plane share them.
    const fleetPids = fleets.pids();
    const workerProcesses = processes.slice(1);
    const cpuByPart = () => ({
      api: cpuSeconds(api.pid),
      workers: workerProcesses.reduce((n, p) => n + (p.exitCode === null ? cpuSeconds(p.pid) : 0), 0),
      agents: fleetPids.reduce((n: number, pid) => n + cpuSeconds(pid), 0),
      postgres: treeCpuSeconds(pidFromFile(join(testStack.stateDir, "postgres", "postmaster.pid"))),
      redis: cpuSeconds(pidFromFile(join(testStack.stateDir, "redis", "redis.pid"))),
    });
    const cpuSince = (before: ReturnType<typeof cpuByPart>) => {
      const now = cpuByPart();
      return Object.fromEntries(Object.entries(now).map(([k, v]) => [k, Math.round((v - before[k as keyof typeof now]) * 10) / 10]));
    };
    const cpuAtStart = cpuByPart();
    let t0 = Date.now();
    const hostnames = await fleets.register();
    const registerMs = Date.now() - t0;
    const registerCpuS = cpuSince(cpuAtStart);
    const registerLoadAvg = loadAverage();
    // The machine's speed before the run (nothing but idle beats going on) and after it.
    const cpuReferenceBefore = cpuReferenceMs();
    console.error(`${NODES} nodes registered in ${registerMs} ms`);
    // From here each agent beats with an agent token of its own, as agents that joined do, so each
    // beat's token check costs what a real fleet's does (beats are seconds apart; a check is kept
    // for a second). They registered with the admin token, which is what records an engine URL
    // for a node without a machine (libs/core engineUrlFor); the machines' join is not simulated:
    // the tokens are written as it would leave them.
    const agentTokens = hostnames.map(() => newTokenSecret());
    const fixtures = new pg.Client({ connectionString: adminUrl(db) });
    await fixtures.connect();
    await fixtures.query(
      `INSERT INTO "ApiToken" (id, name, hash, role) SELECT gen_random_uuid(), n, h, 'agent' FROM unnest($1::text[], $2::text[]) AS t(n, h)`,
      [hostnames.map(agentTokenName), agentTokens.map(hashToken)],
    );
    await fixtures.end();
    await fleets.useTokens(Object.fromEntries(hostnames.map((h, i) => [h, agentTokens[i]])));

    // Listing latency while the control plane works (what ctl and the console feel), measured
    // from a process of its own (listing-probe.mjs): in this one, the simulated agents' work
    // would add this process's event-loop stalls to every request.
    const prober = spawn(process.execPath, [join(repoRoot, "apps/api/bench/listing-probe.mjs"), url, token], {
      stdio: ["pipe", "pipe", "inherit"],
    });
    processes.push(prober);
    let probeOut = "";
    const probeReady = new Promise<void>((resolve, reject) => {
      prober.stdout!.on("data", (d: Buffer) => {
        probeOut += d.toString();
        if (probeOut.startsWith(PROBE_READY)) resolve();
      });
      prober.once("exit", (code) => reject(new Error(`the listing probe exited (${code}) before its first request answered`)));
    });
    const probeDone = new Promise<void>((resolve) => prober.on("exit", () => resolve()));
    await probeReady;

    t0 = Date.now();
    const convergeCpu0 = cpuByPart();
    const cpu0 = cpuSeconds(api.pid);
    const workers = processes.slice(1).filter((p) => p !== prober);
    const workersCpu = () => workers.reduce((n, w) => n + cpuSeconds(w.pid), 0);
    const workerCpu0 = workersCpu();
    // Heartbeats from the first service on: what the agents felt while the plane worked. Their
    // processes' event-loop delay is part of every round trip they time, and tells the API's
    // share from the load generator's.
    await fleets.mark();
    const per = Math.ceil(REPLICAS / SERVICES);
    for (let i = 1; i <= SERVICES; i++) {
      await call("POST", "/api/v1/services", {
        name: `svc-${i}`,
        image: "busybox",
        replicas: Math.min(per, REPLICAS - per * (i - 1)),
        placement: { preferences: [{ spread: "node.labels.zone" }] },
        resources: { reservations: { memoryBytes: 16 * 1024 ** 2 } },
      });
    }
    console.error(`${SERVICES} services created in ${Date.now() - t0} ms`);
    const progress = new pg.Client({ connectionString: adminUrl(db) });
    await progress.connect();
    let last = "";
    let running = 0;
    let gaveUp = false;
    let states: { state: string; n: number }[] = [];
    let statesAt = -Infinity;
    for (;;) {
      const list = (await call("GET", "/api/v1/services").catch(() => [])) as { running: number; desired: number }[];
      running = list.reduce((n, s) => n + s.running, 0);
      // Where the rest are (from Postgres): tells a slow reconcile from a slow dispatch. Every
      // 3 s: the count passes over every task (85 ms at 150,000), Postgres time the plane needs.
      if (Date.now() - statesAt >= 3_000) {
        statesAt = Date.now();
        states = (
          await progress.query<{ state: string; n: number }>(
            `SELECT state::text, count(*)::int AS n FROM "Task" WHERE state <> 'RUNNING' GROUP BY 1`,
          )
        ).rows;
      }
      const line = `${Math.round((Date.now() - t0) / 1000)}s: ${running}/${REPLICAS} running ${states.map((r) => `${r.state} ${r.n}`).join(", ")}`;
      if (line !== last) console.error(line);
      last = line;
      if (running >= REPLICAS) break;
      // Past the limit the figures are still reported (allRunningMs null), with how many ran.
      if (Date.now() - t0 > GIVE_UP_MS) {
        console.error(`gave up: ${line}`);
        gaveUp = true;
        break;
      }
      await new Promise((r) => setTimeout(r, 1000));
    }
    const elapsed = Date.now() - t0;
    await progress.end();
    prober.stdin!.end("stop\n");
    await probeDone;
    const { latencies, sentAt, failures } = JSON.parse(probeOut.slice(PROBE_READY.length)) as {
      latencies: number[];
      sentAt: number[];
      failures: string[];
    };
    const slowest = latencies
      .map((ms, i) => ({ ms, atS: Math.round((sentAt[i]! - t0) / 100) / 10 }))
      .sort((a, b) => b.ms - a.ms)
      .slice(0, 5);
    console.error(`slowest listing requests: ${slowest.map((x) => `${x.ms} ms at ${x.atS} s`).join(", ")}`);
    const convergeCpuS = cpuSince(convergeCpu0);
    const apiCpuS = Math.round((cpuSeconds(api.pid) - cpu0) * 10) / 10;
    const workerCpuS = workers.length ? Math.round((workersCpu() - workerCpu0) * 10) / 10 : null;
    const agentReport = await fleets.report();
    // When the slow beats were sent (5 s windows from the first service) and how much of them was
    // the API's: a burst of slow beats with small API shares is time spent outside the API.
    const windows = new Map<number, { n: number; worst: number; server: number }>();
    for (const b of agentReport.slowBeats) {
      const w = Math.floor((b.sentAt - t0) / 5000) * 5;
      const x = windows.get(w) ?? { n: 0, worst: 0, server: 0 };
      windows.set(w, { n: x.n + 1, worst: Math.max(x.worst, b.ms), server: Math.max(x.server, b.serverMs ?? 0) });
    }
    if (windows.size)
      console.error(
        `beats of 1 s or more, by when sent: ${[...windows]
          .sort((a, b) => a[0] - b[0])
          .map(([w, x]) => `${w}s: ${x.n} (worst ${x.worst} ms, API ${Math.round(x.server)} ms)`)
          .join("; ")}`,
      );
    const containers = agentReport.containers;
    const nodeList = (await call("GET", "/api/v1/nodes")) as { status: string }[];
    // Every agent heartbeats throughout: any node marked down meanwhile was marked wrongly.
    const bench = new pg.Client({ connectionString: adminUrl(db) });
    await bench.connect();
    const markedDown = Number(
      (await bench.query(`SELECT count(DISTINCT "subjectId")::int AS n FROM "Event" WHERE kind = 'node' AND action = 'down'`)).rows[0].n,
    );
    await bench.end();
    // The API's own time over the same beats (Server-Timing): the rest of each round trip is
    // the agents' processes (their event-loop stalls, benchLoopDelayMs) and the loopback between.
    const { beats, serverBeats } = agentReport;
    console.log(
      JSON.stringify({
        nodes: NODES,
        replicas: REPLICAS,
        services: SERVICES,
        allRunningMs: gaveUp ? null : elapsed,
        ...(gaveUp ? { gaveUpAfterMs: elapsed, runningAtGiveUp: running, tasksPerS: Math.round(running / (elapsed / 1000)) } : {}),
        goalMs: GOAL_MS,
        goalMet: !gaveUp && elapsed < GOAL_MS,
        ratioToGoal: Math.round((elapsed / GOAL_MS) * 100) / 100,
        containersRunning: containers,
        duplicates: Math.max(0, containers - REPLICAS),
        nodesMarkedDown: markedDown,
        nodesNotReadyAtEnd: nodeList.filter((n) => n.status !== "ready").length,
        layout: LAYOUT,
        workers: LAYOUT === "split" ? WORKERS : 0,
        // The API process's CPU time while it converged (with BENCH_LAYOUT=all, the worker's too);
        // near allRunningMs means it was CPU-bound.
        apiCpuS,
        workerCpuS,
        apiFailures: failures.length,
        firstFailure: failures[0],
        registerMs,
        // CPU seconds per part (api, workers, agents, postgres, redis) while the fleet registered
        // and while the services converged.
        cpuS: { register: registerCpuS, converge: convergeCpuS },
        registerLoadAvg,
        apiLatencyMs: { requests: latencies.length, ...latencySummary(latencies) },
        // The agents' processes (the worst one's).
        benchLoopDelayMs: { p99: agentReport.loopP99Ms, max: agentReport.loopMaxMs },
        agentProcesses: AGENT_PROCESSES,
        agentWatch: process.env.BENCH_AGENT_WATCH === "1",
        heartbeatMs: { beats: beats.length, failed: agentReport.failed, ...latencySummary(beats) },
        heartbeatServerMs: { beats: serverBeats.length, ...latencySummary(serverBeats) },
        // The period agents were told at the end (it grows with the cluster).
        heartbeatPeriodMs: agentReport.intervalMs,
        cpuReferenceMs: { before: cpuReferenceBefore, after: cpuReferenceMs() },
        loadAvg: loadAverage(),
      }),
    );
  } finally {
    // The API first: agents gone before it would look like a cluster-wide outage to it, and it
    // would spend its shutdown orphaning and rescheduling every task.
    await Promise.all(
      processes.map(async (p) => {
        if (p.exitCode !== null || p.signalCode !== null) return;
        const exited = new Promise((r) => p.once("exit", r));
        p.kill("SIGTERM");
        await exited;
      }),
    );
    await fleets?.stop();
    await admin.query(`DROP DATABASE IF EXISTS ${db} WITH (FORCE)`);
    await admin.end();
    await dropKeys(redisUrl(), `${queuePrefix}:*`);
  }
}

main().then(
  () => process.exit(0),
  (e: Error) => {
    console.error(`bench failed: ${e.stack ?? e.message}`);
    process.exit(1);
  },
);
