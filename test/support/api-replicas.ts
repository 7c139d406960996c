// Real `flotilla-api` processes (apps/api/dist/main.js) against one test database and Redis, on
// loopback ports chosen here: API replicas for the tests of clients failing over between them,
// and mixed layouts (two `api` processes and a `worker`) for the tests of what one process shows
// of another's writes. Kill one with SIGKILL and the others keep answering; restart it on its
// port. The first process must serve HTTP: it writes the admin token into a config dir all
// processes share.
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createTestDatabase, type TestDatabase } from "./database";
import { testQueuePrefix } from "./queue-prefix";

const MAIN = join(__dirname, "..", "..", "apps", "api", "dist", "main.js");
const START_MS = 60_000;

export type ProcessRole = "all" | "api" | "worker";

export interface ProcessSpec {
  role: ProcessRole;
  /** Settings of this process alone, over the shared ones. */
  env?: Record<string, string>;
}

export interface ApiReplica {
  role: ProcessRole;
  /** The HTTP API's base URL; "" for a worker (it serves none). */
  url: string;
  port: number;
  child: ChildProcess;
  /** Everything the current child wrote to stderr, for failure messages. */
  stderr: string;
}

export interface ApiReplicas {
  /** One per spec, in their order. */
  replicas: ApiReplica[];
  /** The URLs of the processes that serve HTTP, in their order. */
  urls: string[];
  token: string;
  configDir: string;
  db: TestDatabase;
  /** The queue prefix (and event channel's) all processes share. */
  queuePrefix: string;
  /** SIGKILL, and waits for the exit: no draining, as a crash. */
  kill(index: number): Promise<void>;
  /** Starts a killed process again, same role, port and settings; resolves once it is ready. */
  restart(index: number): Promise<void>;
  stop(): Promise<void>;
}

/**
 * A port free right now on 127.0.0.1, below the kernel's ephemeral range (an ephemeral one may be
 * given to any outgoing connection between this check and the replica's listen), chosen at random
 * so suites running at once rarely pick the same one.
 */
export async function freePort(): Promise<number> {
  const [low] = readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8").trim().split(/\s+/).map(Number);
  const floor = 10_000;
  for (let attempt = 0; attempt < 50; attempt++) {
    const port = floor + Math.floor(Math.random() * (low - floor));
    const server = createServer();
    const free = await new Promise<boolean>((resolve) => {
      server.once("error", () => resolve(false));
      server.listen(port, "127.0.0.1", () => resolve(true));
    });
    if (free) {
      await new Promise<void>((r) => server.close(() => r()));
      return port;
    }
  }
  throw new Error("no free port below the ephemeral range after 50 tries");
}

const alive = (r: ApiReplica) => r.child.exitCode === null && r.child.signalCode === null;
const exited = (r: ApiReplica) => (alive(r) ? new Promise<void>((res) => r.child.once("exit", () => res())) : Promise.resolve());

/**
 * Starts `count` replicas of role `all` (or one process per spec), the first alone (it makes the
 * admin token), then the others at once. `env(urls)` adds settings that may name every HTTP
 * process's URL (FLOTILLA_PUBLIC_URLS, FLOTILLA_AGENT_API_URL). If any fails to start, those
 * started are killed and the database dropped before the error is thrown.
 */
export async function startApiReplicas(
  layout: number | ProcessSpec[],
  redisUrl: string,
  env: (urls: string[]) => Record<string, string> = () => ({}),
): Promise<ApiReplicas> {
  const specs: ProcessSpec[] = typeof layout === "number" ? Array.from({ length: layout }, () => ({ role: "all" })) : layout;
  if (specs[0]?.role === "worker") throw new Error("the first process must serve HTTP: it writes the admin token");
  // The deployed artefact, not tsx: esbuild emits no decorator metadata, which Nest's DI needs.
  execFileSync(process.execPath, [require.resolve("typescript/bin/tsc"), "-b", join(__dirname, "..", "..", "apps", "api")], {
    stdio: "inherit",
  });
  const db = await createTestDatabase();
  const configDir = mkdtempSync(join(tmpdir(), "flotilla-replicas-"));
  const ports: number[] = [];
  for (const s of specs) ports.push(s.role === "worker" ? 0 : await freePort());
  const urls = ports.filter((p) => p > 0).map((p) => `http://127.0.0.1:${p}`);
  const queuePrefix = testQueuePrefix("replicas");
  const shared = env(urls);
  const replicas: ApiReplica[] = specs.map((s, i) => ({
    role: s.role,
    port: ports[i]!,
    url: ports[i] ? `http://127.0.0.1:${ports[i]}` : "",
    child: undefined as unknown as ChildProcess,
    stderr: "",
  }));

  const launch = async (i: number): Promise<void> => {
    const r = replicas[i]!;
    r.stderr = "";
    r.child = spawn(process.execPath, [MAIN, r.role], {
      env: {
        PATH: process.env.PATH,
        HOME: configDir,
        DATABASE_URL: db.url,
        REDIS_URL: redisUrl,
        ...(r.port ? { FLOTILLA_PORT: String(r.port) } : {}),
        FLOTILLA_CONFIG_DIR: configDir,
        FLOTILLA_DATA_DIR: join(configDir, "data"),
        FLOTILLA_QUEUE_PREFIX: queuePrefix,
        FLOTILLA_LOG_LEVEL: "warn",
        ...shared,
        ...specs[i]!.env,
      },
      stdio: ["ignore", "ignore", "pipe"],
    });
    r.child.stderr!.on("data", (d: Buffer) => (r.stderr += d.toString()));
    const end = Date.now() + START_MS;
    for (;;) {
      if (!alive(r)) throw new Error(`${r.role} process ${r.url || i} exited: ${r.stderr}`);
      // A worker serves no HTTP: it says on stderr when its consumers run (main.ts).
      const ready = r.url
        ? await fetch(`${r.url}/api/v1/health`).then(
            (res) => res.ok,
            () => false,
          )
        : r.stderr.includes("flotilla-api: worker running");
      // The first process writes the admin token just after it starts listening.
      if (ready && existsSync(join(configDir, "config.json"))) return;
      if (Date.now() > end) throw new Error(`${r.role} process ${r.url || i} was not ready within ${START_MS} ms: ${r.stderr}`);
      await new Promise((res) => setTimeout(res, 100));
    }
  };
  const killAll = async () => {
    const started = replicas.filter((r) => r.child);
    for (const r of started) if (alive(r)) r.child.kill("SIGKILL");
    await Promise.all(started.map(exited));
  };
  // Should the test process end without its afterAll (a crash, a kill), no child outlives it.
  const onExit = () => {
    for (const r of replicas) if (r.child && alive(r)) r.child.kill("SIGKILL");
  };
  process.once("exit", onExit);
  const cleanUp = async () => {
    process.removeListener("exit", onExit);
    await killAll();
    await db.drop();
    rmSync(configDir, { recursive: true, force: true });
  };

  try {
    await launch(0);
    await Promise.all(specs.slice(1).map((_, i) => launch(i + 1)));
  } catch (e) {
    await cleanUp();
    throw e;
  }
  const token = (JSON.parse(readFileSync(join(configDir, "config.json"), "utf8")) as { token: string }).token;
  return {
    replicas,
    urls,
    token,
    configDir,
    db,
    queuePrefix,
    async kill(index) {
      const r = replicas[index]!;
      r.child.kill("SIGKILL");
      await exited(r);
    },
    async restart(index) {
      if (alive(replicas[index]!)) throw new Error(`process ${index} is still running: kill it first`);
      await launch(index);
    },
    stop: cleanUp,
  };
}
