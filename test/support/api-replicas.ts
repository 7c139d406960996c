// Several real `flotilla-api` processes (apps/api/dist/main.js, role all) against one test
// database and Redis, on loopback ports chosen here, for the tests of clients failing over between
// replicas: kill one with SIGKILL and the others keep answering. The first start writes the admin
// token into a config dir all replicas share.
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createTestDatabase, type TestDatabase } from "./database";

const MAIN = join(__dirname, "..", "..", "apps", "api", "dist", "main.js");

export interface ApiReplica {
  url: string;
  port: number;
  child: ChildProcess;
  /** Everything it wrote to stderr, for failure messages. */
  stderr: string;
}

export interface ApiReplicas {
  replicas: ApiReplica[];
  urls: string[];
  token: string;
  configDir: string;
  db: TestDatabase;
  /** SIGKILL, and waits for the exit: no draining, as a crash. */
  kill(index: number): Promise<void>;
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

/**
 * Starts `count` replicas one after another (the first makes the admin token). `env(urls)` adds
 * settings that may name every replica's URL (FLOTILLA_PUBLIC_URLS, FLOTILLA_AGENT_API_URL).
 */
export async function startApiReplicas(
  count: number,
  redisUrl: string,
  env: (urls: string[]) => Record<string, string> = () => ({}),
): Promise<ApiReplicas> {
  // The deployed artefact, not tsx: esbuild emits no decorator metadata, which Nest's DI needs.
  execFileSync(process.execPath, [require.resolve("typescript/bin/tsc"), "-b", join(__dirname, "..", "..", "apps", "api")], {
    stdio: "inherit",
  });
  const db = await createTestDatabase();
  const configDir = mkdtempSync(join(tmpdir(), "flotilla-replicas-"));
  const ports: number[] = [];
  for (let i = 0; i < count; i++) ports.push(await freePort());
  const urls = ports.map((p) => `http://127.0.0.1:${p}`);
  const replicas: ApiReplica[] = [];
  const prefix = `replicas${ports[0]}`;
  for (const port of ports) {
    const child = spawn(process.execPath, [MAIN, "all"], {
      env: {
        PATH: process.env.PATH,
        HOME: configDir,
        DATABASE_URL: db.url,
        REDIS_URL: redisUrl,
        FLOTILLA_PORT: String(port),
        FLOTILLA_CONFIG_DIR: configDir,
        FLOTILLA_DATA_DIR: join(configDir, "data"),
        FLOTILLA_QUEUE_PREFIX: prefix,
        FLOTILLA_LOG_LEVEL: "warn",
        ...env(urls),
      },
      stdio: ["ignore", "ignore", "pipe"],
    });
    const replica: ApiReplica = { url: `http://127.0.0.1:${port}`, port, child, stderr: "" };
    child.stderr!.on("data", (d: Buffer) => (replica.stderr += d.toString()));
    replicas.push(replica);
    const end = Date.now() + 60_000;
    for (;;) {
      if (child.exitCode !== null) throw new Error(`API replica on ${port} exited: ${replica.stderr}`);
      const ok = await fetch(`${replica.url}/api/v1/health`).then(
        (r) => r.ok,
        () => false,
      );
      // The first replica writes the admin token just after it starts listening.
      if (ok && existsSync(join(configDir, "config.json"))) break;
      if (Date.now() > end) throw new Error(`API replica on ${port} did not answer: ${replica.stderr}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  const token = (JSON.parse(readFileSync(join(configDir, "config.json"), "utf8")) as { token: string }).token;
  const exited = (r: ApiReplica) =>
    r.child.exitCode !== null || r.child.signalCode !== null
      ? Promise.resolve()
      : new Promise<void>((res) => r.child.once("exit", () => res()));
  return {
    replicas,
    urls,
    token,
    configDir,
    db,
    async kill(index) {
      const r = replicas[index];
      r.child.kill("SIGKILL");
      await exited(r);
    },
    async stop() {
      for (const r of replicas) if (r.child.exitCode === null && r.child.signalCode === null) r.child.kill("SIGKILL");
      await Promise.all(replicas.map(exited));
      await db.drop();
      rmSync(configDir, { recursive: true, force: true });
    },
  };
}
