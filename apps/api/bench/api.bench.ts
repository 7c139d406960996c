// API bench: CLIENTS concurrent keep-alive clients (default 200) on the listings ctl and the
// console poll — GET /services, /nodes, /tasks?service= — against one API process and then two
// (clients split evenly, as a load balancer would), on a cluster of --nodes simulated agents
// running --services × --replicas tasks. Per case: requests per second and p50/p99 latency.
// Reference in the same run: GET /health (no token, one Postgres and one Redis round trip), the
// cost of a request through the same HTTP stack. Goal: p99 < 50 ms with one process.
// `--conditional` adds cases whose clients send the ETag they got back (If-None-Match), as the
// console's browser does: what an unchanged listing costs. `--gzip` adds cases whose clients send
// `Accept-Encoding: gzip` (as browsers and ctl's fetch do) and read the encoded bytes: what a
// listing costs when the bytes written shrink.
//
// Runs the *built* API (`node apps/api/dist/main.js`, or BENCH_API_MAIN to compare another build):
// tsx does not emit the decorator metadata NestJS needs. Postgres and Redis are the integration
// tests' stack (started if needed).
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync } from "node:fs";
import http from "node:http";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { parseArgs } from "node:util";
import pg from "pg";
import { adminUrl, redisUrl, repoRoot, stack } from "../../../test/support/stack";
import { deployMigrations } from "../../../test/support/migrations";
import { SimAgent } from "../../../test/support/sim-agent";
import { controlPlaneNodeArgs, cpuSeconds, loadAverage, percentile } from "./measure";
import { dropKeys } from "../../../test/support/redis-keys";

const USAGE = `usage: npm run bench:api -- [--json] [--clients N] [--seconds S] [--nodes N] [--services N] [--replicas N] [--conditional] [--gzip]
  --clients    concurrent clients (200)        --seconds   measured seconds per case (8)
  --nodes      simulated agents (50)           --services  services (20)
  --replicas   replicas per service (20)       --conditional  also measure If-None-Match requests
  --gzip       also measure requests accepting gzip`;

function options() {
  const { values } = parseArgs({
    options: {
      json: { type: "boolean", default: false },
      conditional: { type: "boolean", default: false },
      gzip: { type: "boolean", default: false },
      clients: { type: "string", default: "200" },
      seconds: { type: "string", default: "8" },
      nodes: { type: "string", default: "50" },
      services: { type: "string", default: "20" },
      replicas: { type: "string", default: "20" },
      help: { type: "boolean", default: false },
    },
    strict: true,
  });
  if (values.help) {
    console.log(USAGE);
    process.exit(0);
  }
  const num = (name: "clients" | "seconds" | "nodes" | "services" | "replicas") => {
    const n = Number(values[name]);
    if (!Number.isInteger(n) || n < 1) throw new Error(`invalid --${name}: must be a whole number ≥ 1 (got '${values[name]}')`);
    return n;
  };
  return {
    json: values.json,
    conditional: values.conditional,
    gzip: values.gzip,
    clients: num("clients"),
    seconds: num("seconds"),
    nodes: num("nodes"),
    services: num("services"),
    replicas: num("replicas"),
  };
}

const freePort = () =>
  new Promise<number>((resolve) => {
    const s = createServer().listen(0, "127.0.0.1", () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => resolve(p));
    });
  });

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export interface CaseResult {
  path: string;
  processes: number;
  conditional?: boolean;
  gzip?: boolean;
  requests: number;
  /** Mean body bytes per 200 answer, as sent (encoded). */
  bodyBytes?: number;
  rps: number;
  p50Ms: number;
  p99Ms: number;
  errors: number;
  notModified?: number;
  /** CPU use while the case ran, in cores: the API processes', and this process's (the clients). */
  apiCpu: number;
  clientCpu: number;
  /** The machine's 1/5/15-minute load averages when the case ended. */
  loadAvg: number[];
}

/** One keep-alive GET; resolves with the status, the ETag and the body's size (the body is read and dropped). */
function get(
  agent: http.Agent,
  base: URL,
  path: string,
  headers: Record<string, string>,
): Promise<{ status: number; etag?: string; bytes: number }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ agent, host: base.hostname, port: base.port, path, method: "GET", headers }, (res) => {
      let bytes = 0;
      res.on("data", (c: Buffer) => (bytes += c.length));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, etag: res.headers.etag, bytes }));
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end();
  });
}

/** `clients` loops of back-to-back GETs over `urls` (client i uses urls[i % n]) for `seconds`. */
async function load(
  urls: URL[],
  path: string,
  token: string | undefined,
  clients: number,
  seconds: number,
  conditional: boolean,
  gzip: boolean,
): Promise<Omit<CaseResult, "path" | "processes" | "apiCpu" | "clientCpu" | "loadAvg">> {
  const agents = urls.map(() => new http.Agent({ keepAlive: true, maxSockets: clients }));
  const latencies: number[] = [];
  let errors = 0;
  let notModified = 0;
  let bytes = 0;
  const warmupUntil = Date.now() + 1_000;
  const until = warmupUntil + seconds * 1_000;
  const client = async (i: number) => {
    const base = urls[i % urls.length]!;
    const agent = agents[i % urls.length]!;
    let etag: string | undefined;
    while (Date.now() < until) {
      const headers: Record<string, string> = {};
      if (token) headers.authorization = `Bearer ${token}`;
      if (conditional && etag) headers["if-none-match"] = etag;
      if (gzip) headers["accept-encoding"] = "gzip";
      const s = performance.now();
      const r = await get(agent, base, path, headers).catch(() => ({ status: 0, etag: undefined, bytes: 0 }));
      const ms = performance.now() - s;
      if (Date.now() < warmupUntil) continue;
      if (r.status === 200 || r.status === 304) latencies.push(ms);
      else errors++;
      if (r.status === 304) notModified++;
      if (r.status === 200) bytes += r.bytes;
      if (r.etag) etag = r.etag;
    }
  };
  await Promise.all(Array.from({ length: clients }, (_, i) => client(i)));
  agents.forEach((a) => a.destroy());
  return {
    ...(conditional ? { conditional: true } : {}),
    ...(gzip ? { gzip: true } : {}),
    requests: latencies.length,
    bodyBytes: Math.round(bytes / Math.max(1, latencies.length - notModified)),
    rps: Math.round(latencies.length / seconds),
    p50Ms: Math.round(percentile(latencies, 50) * 10) / 10,
    p99Ms: Math.round(percentile(latencies, 99) * 10) / 10,
    errors,
    ...(conditional ? { notModified } : {}),
  };
}

async function main(): Promise<void> {
  const o = options();
  stack("up");
  const db = `flotilla_bench_${randomBytes(4).toString("hex")}`;
  const admin = new pg.Client({ connectionString: adminUrl() });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${db}`);
  await deployMigrations(adminUrl(db));
  const configDir = mkdtempSync(join(tmpdir(), "flotilla-bench-"));
  const prefix = `bench${randomBytes(3).toString("hex")}`;
  const procs: ChildProcess[] = [];
  const pids = new Map<string, number | undefined>();
  const startRole = async (role: "api" | "worker") => {
    const port = await freePort();
    const main = process.env.BENCH_API_MAIN ?? join(repoRoot, "apps/api/dist/main.js");
    const nodeArgs = controlPlaneNodeArgs();
    const child = spawn(process.execPath, [...nodeArgs, main, role], {
      env: {
        ...process.env,
        DATABASE_URL: adminUrl(db),
        REDIS_URL: redisUrl(),
        FLOTILLA_PORT: String(port),
        FLOTILLA_CONFIG_DIR: configDir,
        FLOTILLA_QUEUE_PREFIX: prefix,
        FLOTILLA_LOG_LEVEL: process.env.FLOTILLA_LOG_LEVEL ?? "warn",
      },
      // The API logs to our stderr: stdout carries only the figures, the JSON last.
      stdio: ["ignore", process.stderr, "inherit"],
      detached: true,
    });
    procs.push(child);
    const url = new URL(`http://127.0.0.1:${port}`);
    pids.set(url.toString(), child.pid);
    if (role === "api") {
      for (let i = 0; i < 300; i++) {
        if (child.exitCode !== null) throw new Error(`the API exited (${child.exitCode}) before it answered`);
        const ok = await fetch(new URL("/api/v1/health", url)).then(
          (r) => r.ok,
          () => false,
        );
        if (ok) break;
        await sleep(200);
      }
    }
    return url;
  };
  const agents: SimAgent[] = [];
  try {
    const api1 = await startRole("api");
    await startRole("worker");
    for (let i = 0; i < 150 && !existsSync(join(configDir, "config.json")); i++) await sleep(200);
    const token = (JSON.parse(readFileSync(join(configDir, "config.json"), "utf8")) as { token: string }).token;
    const call = async (method: string, path: string, body?: unknown) => {
      const res = await fetch(new URL(path, api1), {
        method,
        headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
        ...(body ? { body: JSON.stringify(body) } : {}),
      });
      if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${await res.text()}`);
      return res.json() as Promise<unknown>;
    };
    for (let i = 1; i <= o.nodes; i++) {
      agents.push(
        await new SimAgent({
          hostname: `bench-${i}`,
          apiUrl: api1.toString().replace(/\/$/, ""),
          token,
          images: ["busybox:latest"],
        }).start(),
      );
    }
    for (let i = 1; i <= o.services; i++)
      await call("POST", "/api/v1/services", { name: `svc-${i}`, image: "busybox", replicas: o.replicas });
    const total = o.services * o.replicas;
    for (let t0 = Date.now(); ; await sleep(500)) {
      const list = (await call("GET", "/api/v1/services")) as { running: number }[];
      if (list.reduce((n, s) => n + s.running, 0) >= total) break;
      if (Date.now() - t0 > 300_000) throw new Error(`gave up waiting for ${total} tasks to run`);
    }
    console.error(`${o.nodes} nodes, ${o.services} services, ${total} tasks running`);

    const paths = ["/api/v1/health", "/api/v1/services", "/api/v1/nodes", "/api/v1/tasks?service=svc-1"];
    const cases: CaseResult[] = [];
    // A load's result with the CPU the APIs and this process used meanwhile: which side saturated.
    const measured = async <T>(urls: URL[], fn: () => Promise<T>) => {
      const apiCpu = () => urls.reduce((n, u) => n + cpuSeconds(pids.get(u.toString())), 0);
      const [a0, c0, t0] = [apiCpu(), process.cpuUsage(), performance.now()];
      const r = await fn();
      const s = (performance.now() - t0) / 1000;
      const c = process.cpuUsage(c0);
      const round = (x: number) => Math.round(x * 100) / 100;
      return { ...r, apiCpu: round((apiCpu() - a0) / s), clientCpu: round((c.user + c.system) / 1e6 / s), loadAvg: loadAverage() };
    };
    const run = async (urls: URL[]) => {
      for (const path of paths) {
        const variants = [{ conditional: false, gzip: false }];
        if (path !== "/api/v1/health") {
          if (o.conditional) variants.push({ conditional: true, gzip: false });
          if (o.gzip) variants.push({ conditional: false, gzip: true });
        }
        for (const { conditional, gzip } of variants) {
          const token_ = path === "/api/v1/health" ? undefined : token;
          const r = {
            path: path.replace("/api/v1", ""),
            processes: urls.length,
            ...(await measured(urls, () => load(urls, path, token_, o.clients, o.seconds, conditional, gzip))),
          };
          console.error(JSON.stringify(r));
          cases.push(r);
        }
      }
    };
    await run([api1]);
    const api2 = await startRole("api");
    await run([api1, api2]);
    const one = cases.filter((c) => c.processes === 1 && c.path !== "/health" && !c.conditional && !c.gzip);
    console.log(
      JSON.stringify({
        clients: o.clients,
        nodes: o.nodes,
        tasks: total,
        goalP99Ms: 50,
        goalMet: one.every((c) => c.p99Ms < 50 && c.errors === 0),
        cases,
      }),
    );
  } finally {
    for (const p of procs.reverse()) {
      if (p.exitCode === null && p.signalCode === null) {
        const exited = new Promise((r) => p.once("exit", r));
        p.kill("SIGTERM");
        await exited;
      }
    }
    await Promise.all(agents.map((a) => a.stop()));
    await admin.query(`DROP DATABASE IF EXISTS ${db} WITH (FORCE)`);
    await admin.end();
    await dropKeys(redisUrl(), `${prefix}:*`);
  }
}

main().then(
  () => process.exit(0),
  (e: Error) => {
    console.error(`bench failed: ${e.stack ?? e.message}`);
    process.exit(1);
  },
);
