// A fault lab: the real control plane as its own process (`node apps/api/dist/main.js all`) on
// a Postgres and Redis of its own (deploy/local/stack.sh with its own state dir and ports), so
// that stopping Postgres, killing Redis -9 or killing the API -9 touches nothing else; three
// netns machines made by ctl, with real agents, shims and the ingress mesh, on a bridge of the
// lab's own in 198.19.0.0/16; a real OCI registry. Used by `npm run bench:faults` and by
// test/e2e/faults.int.spec.ts. Root only.
import { execFile, execFileSync, spawn, type ChildProcess } from "node:child_process";
import { appendFileSync, chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { join } from "node:path";
import { deployMigrations } from "../support/migrations";
import { startRegistry, type TestRegistry } from "../support/registry";
import { repoRoot } from "../support/stack";
import { addBridge, forward, parseExports, removeLeftovers } from "../e2e/support";
import { testBridge } from "../support/leftovers";

export interface LabSettings {
  /** Names things (machines, bridge, state dir); short. */
  tag: string;
  /** The third octet of the lab's 198.19.X.0/24. */
  subnet: number;
  heartbeatMs: number;
  sweepMs: number;
  /** The agents' heartbeat back-off cap, which the control plane waits out after an outage. */
  agentMaxBackoffMs: number;
  machines: number;
  log?: (line: string) => void;
}

export interface TaskView {
  id: string;
  slot: number | null;
  nodeHostname: string | null;
  containerId: string | null;
  state: string;
  desiredState: string;
}

export interface Container {
  id: string;
  machine: string;
  startedAt: string;
  slot: string;
}

const PG_BIN = "/usr/lib/postgresql/15/bin";
// Each task serves its container's host name (the container id's first 12 characters).
export const WHOAMI = ["sh", "-c", "mkdir -p /www && hostname > /www/index.html && exec httpd -f -p 80 -h /www"];

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export const freePort = () =>
  new Promise<number>((resolve) => {
    const s = createServer().listen(0, "127.0.0.1", () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => resolve(p));
    });
  });

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}
function run(cmd: string, args: string[], env: NodeJS.ProcessEnv, timeoutMs = 120_000): Promise<Run> {
  return new Promise((resolve) =>
    execFile(cmd, args, { env, encoding: "utf8", timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) =>
      resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    ),
  );
}

/** Polls `probe` until it returns something truthy; undefined after `ms`. Errors count as not yet. */
export async function until<T>(probe: () => Promise<T | undefined | false>, ms: number, everyMs = 250): Promise<T | undefined> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await probe().catch(() => undefined);
    if (v) return v;
    if (Date.now() > end) return undefined;
    await sleep(everyMs);
  }
}

export class FaultLab {
  readonly machines: string[];
  readonly gateway: string;
  readonly bridge: string;
  readonly ips: Record<string, string> = {};
  readonly dead = new Set<string>();
  private readonly dockerEnvs = new Map<string, NodeJS.ProcessEnv>();
  private readonly dir: string;
  private api?: ChildProcess;
  private apiLog = "";
  private apiPort = 0;
  private pgPort = 0;
  private redisPort = 0;
  private registry?: TestRegistry;
  private registryForward?: Server;
  private configDir = "";
  private token = "";
  image = "";

  constructor(readonly settings: LabSettings) {
    this.machines = Array.from({ length: settings.machines }, (_, i) => `f${String.fromCharCode(97 + i)}-${settings.tag}`);
    this.gateway = `198.19.${settings.subnet}.1`;
    this.bridge = testBridge("flf", settings.tag);
    // Postgres runs as `postgres`: its data must be where that user can enter.
    this.dir = mkdtempSync(join("/var/tmp", `flotilla-faults-${settings.tag}-`));
    chmodSync(this.dir, 0o755);
  }

  private log(line: string): void {
    this.settings.log?.(line);
  }

  private get stackEnv(): NodeJS.ProcessEnv {
    return {
      ...process.env,
      FLOTILLA_STATE_DIR: join(this.dir, "stack"),
      FLOTILLA_PG_PORT: String(this.pgPort),
      FLOTILLA_REDIS_PORT: String(this.redisPort),
      FLOTILLA_PG_FSYNC: "off",
    };
  }
  /** The stack's URLs, passwords included (`stack.sh env`). */
  private urls = { database: "", redis: "" };
  get databaseUrl(): string {
    return this.urls.database;
  }
  get apiUrl(): string {
    return `http://127.0.0.1:${this.apiPort}`;
  }
  get ctlEnv(): NodeJS.ProcessEnv {
    return { PATH: process.env.PATH, HOME: join(this.dir, "home"), FLOTILLA_CONFIG_DIR: this.configDir };
  }

  async stack(cmd: "up" | "down"): Promise<void> {
    const r = await run("bash", [join(repoRoot, "deploy/local/stack.sh"), cmd], this.stackEnv);
    if (r.code !== 0) throw new Error(`stack.sh ${cmd}: ${r.stderr}`);
  }

  async up(): Promise<void> {
    [this.pgPort, this.redisPort, this.apiPort] = [await freePort(), await freePort(), await freePort()];
    await this.stack("up");
    const env = await run("bash", [join(repoRoot, "deploy/local/stack.sh"), "env"], this.stackEnv);
    const vars = Object.fromEntries(
      env.stdout
        .trim()
        .split("\n")
        .map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1)]),
    );
    this.urls = { database: vars.DATABASE_URL ?? "", redis: vars.REDIS_URL ?? "" };
    await deployMigrations(this.databaseUrl);
    addBridge(this.bridge, this.gateway);
    this.configDir = join(this.dir, "config");
    mkdirSync(join(this.dir, "home"), { recursive: true });
    execFileSync("node", [join(repoRoot, "scripts/build-agent-bundle.mjs"), "--out", join(this.dir, "agent.tar.gz")], { stdio: "ignore" });
    this.registry = await startRegistry();
    await this.registry.pushBusybox("busybox:latest");
    const regPort = await freePort();
    this.registryForward = await forward(this.gateway, regPort, Number(this.registry.host.split(":")[1]));
    this.image = `${this.gateway}:${regPort}/busybox:latest`;
    await this.startApi();
    for (const m of this.machines) {
      const r = await this.ctl(
        [
          "machine",
          "create",
          "-d",
          "netns",
          "--netns-cidr",
          `${this.gateway}/24`,
          "--netns-bridge",
          this.bridge,
          "--engine-insecure-registry",
          `${this.gateway}:${regPort}`,
          m,
        ],
        300_000,
      );
      if (r.code !== 0) throw new Error(`ctl machine create ${m}: ${r.stderr}`);
      this.ips[m] = (await this.ctl(["machine", "ip", m])).stdout.trim();
    }
    const ready = await until(async () => (await this.readyNodes()).length === this.machines.length, 120_000);
    if (!ready) throw new Error("the machines did not join as ready nodes");
  }

  /** Starts the control plane (API + worker) as a process of its own; resolves once it answers. */
  async startApi(): Promise<void> {
    const env: NodeJS.ProcessEnv = {
      PATH: process.env.PATH,
      HOME: join(this.dir, "home"),
      DATABASE_URL: this.databaseUrl,
      REDIS_URL: this.urls.redis,
      FLOTILLA_PORT: String(this.apiPort),
      FLOTILLA_CONFIG_DIR: join(this.dir, "config"),
      FLOTILLA_AGENT_LISTEN: `${this.gateway}:${this.apiPort}`,
      FLOTILLA_AGENT_API_URL: `http://${this.gateway}:${this.apiPort}`,
      FLOTILLA_DATA_DIR: join(this.dir, "data"),
      FLOTILLA_AGENT_BUNDLE: join(this.dir, "agent.tar.gz"),
      FLOTILLA_HEARTBEAT_MS: String(this.settings.heartbeatMs),
      FLOTILLA_SWEEP_INTERVAL_MS: String(this.settings.sweepMs),
      FLOTILLA_AGENT_MAX_BACKOFF_MS: String(this.settings.agentMaxBackoffMs),
      FLOTILLA_LOG_LEVEL: process.env.FLOTILLA_FAULTS_LOG_LEVEL ?? "log",
    };
    const child = spawn(process.execPath, [join(repoRoot, "apps/api/dist/main.js"), "all"], { env, stdio: ["ignore", "pipe", "pipe"] });
    this.api = child;
    // FLOTILLA_FAULTS_API_LOG=FILE keeps the whole log for a post-mortem; the tail is kept anyway.
    const file = process.env.FLOTILLA_FAULTS_API_LOG;
    const keep = (b: Buffer) => {
      this.apiLog = (this.apiLog + b.toString()).slice(-200_000);
      if (file) appendFileSync(file, b);
    };
    child.stdout!.on("data", keep);
    child.stderr!.on("data", keep);
    const ok = await until(async () => {
      if (child.exitCode !== null) throw new Error("exited");
      // The admin token is written once the API listens: wait for both.
      const health = await fetch(`${this.apiUrl}/api/v1/health`, { signal: AbortSignal.timeout(2000) });
      return (health.status < 500 && existsSync(join(this.configDir, "config.json"))) || undefined;
    }, 60_000);
    if (!ok) throw new Error(`the control plane did not start: ${this.apiLog.slice(-3000)}`);
    this.token = (JSON.parse(readFileSync(join(this.configDir, "config.json"), "utf8")) as { token: string }).token;
  }

  /** kill -9 of the API and worker process. */
  async killApi(): Promise<void> {
    const child = this.api;
    if (!child || child.exitCode !== null) return;
    const gone = new Promise((r) => child.once("exit", r));
    child.kill("SIGKILL");
    await gone;
  }

  apiLogTail(chars = 4000): string {
    return this.apiLog.slice(-chars);
  }

  private asPg(args: string[]): Promise<Run> {
    return run("runuser", ["-u", "postgres", "--", ...args], process.env);
  }
  async stopPostgres(): Promise<void> {
    const r = await this.asPg([`${PG_BIN}/pg_ctl`, "-D", join(this.dir, "stack/postgres"), "-m", "fast", "-w", "stop"]);
    if (r.code !== 0) throw new Error(`pg_ctl stop: ${r.stderr}`);
  }
  startPostgres(): Promise<void> {
    return this.stack("up");
  }

  /** kill -9 of Redis; with `empty`, its append-only file goes too, so it starts with nothing. */
  async killRedis(empty: boolean): Promise<void> {
    const redisDir = join(this.dir, "stack/redis");
    const pid = Number(readFileSync(join(redisDir, "redis.pid"), "utf8"));
    process.kill(pid, "SIGKILL");
    await until(
      async () => (await run("ps", ["-o", "stat=", "-p", String(pid)], process.env)).stdout.trim().startsWith("Z") || !this.alive(pid),
      10_000,
      50,
    );
    if (empty) rmSync(join(redisDir, "appendonlydir"), { recursive: true, force: true });
  }

  private alive(pid: number): boolean {
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
  }

  async ctl(args: string[], timeoutMs = 120_000): Promise<Run> {
    return run(process.execPath, [join(repoRoot, "apps/ctl/bin/ctl.js"), ...args], this.ctlEnv, timeoutMs);
  }

  async json<T>(path: string): Promise<T> {
    const res = await fetch(this.apiUrl + path, {
      headers: { authorization: `Bearer ${this.token}` },
      signal: AbortSignal.timeout(10_000),
    });
    if (!res.ok) throw new Error(`${path}: HTTP ${res.status}`);
    return (await res.json()) as T;
  }

  async readyNodes(): Promise<string[]> {
    const nodes = await this.json<{ hostname: string; status: string }[]>("/api/v1/nodes");
    return nodes.filter((n) => n.status === "ready").map((n) => n.hostname);
  }

  async runningTasks(service: string): Promise<TaskView[]> {
    return (await this.json<TaskView[]>(`/api/v1/tasks?service=${service}&desired-state=running`)).filter((t) => t.state === "RUNNING");
  }

  live(): string[] {
    return this.machines.filter((m) => !this.dead.has(m));
  }

  /** `eval $(ctl machine env m)`, once per machine: its address and certificates do not change. */
  async dockerEnv(m: string): Promise<NodeJS.ProcessEnv> {
    const known = this.dockerEnvs.get(m);
    if (known) return known;
    const r = await this.ctl(["machine", "env", m]);
    if (r.code !== 0) throw new Error(`ctl machine env ${m}: ${r.stderr}`);
    const env = {
      PATH: process.env.PATH,
      HOME: join(this.dir, "home"),
      DOCKER_CONFIG: join(this.dir, "docker"),
      ...parseExports(r.stdout),
    };
    this.dockerEnvs.set(m, env);
    return env;
  }

  /**
   * The running containers of services, as the machines' own engines report them (docker CLI),
   * with their start times: what identifies a container, not the control plane's task rows.
   */
  async containers(machines = this.live()): Promise<Container[]> {
    const all: Container[] = [];
    for (const m of machines) {
      const env = await this.dockerEnv(m);
      const ps = await run("docker", ["ps", "-q", "--no-trunc", "--filter", "label=flotilla.service.id"], env);
      if (ps.code !== 0) throw new Error(`docker ps on ${m}: ${ps.stderr}`);
      const ids = ps.stdout.split("\n").filter(Boolean);
      if (!ids.length) continue;
      const inspect = await run(
        "docker",
        ["inspect", "--format", '{{.Id}} {{.State.StartedAt}} {{index .Config.Labels "flotilla.slot"}}', ...ids],
        env,
      );
      for (const line of inspect.stdout.split("\n").filter(Boolean)) {
        const [id, startedAt, slot] = line.split(" ");
        all.push({ id, machine: m, startedAt, slot });
      }
    }
    return all;
  }

  /**
   * Exactly `n` running tasks, slots 1..n once each, on live machines, and the machines run
   * exactly those containers: the service has converged.
   */
  /** Exactly slots 1..n of the service run, each once, all on live machines (per the task rows). */
  async replaced(service: string, n: number): Promise<TaskView[] | undefined> {
    const tasks = await this.runningTasks(service);
    const slots = tasks.map((t) => t.slot).sort((a, b) => a! - b!);
    if (tasks.length !== n || slots.some((s, i) => s !== i + 1)) return undefined;
    if (tasks.some((t) => !this.live().includes(t.nodeHostname!))) return undefined;
    return tasks;
  }

  /** replaced(), and the live machines run exactly those tasks' containers (nothing stopped is left). */
  async converged(service: string, n: number): Promise<boolean> {
    const tasks = await this.replaced(service, n);
    if (!tasks) return false;
    const containers = (await this.containers()).map((c) => c.id).sort();
    return JSON.stringify(containers) === JSON.stringify(tasks.map((t) => t.containerId).sort());
  }

  /** The agent's pid, from the supervisor's pid file in the machine's data dir. */
  agentPid(m: string): number {
    return Number(readFileSync(join(this.dir, "data/machines", m, "root/flotilla/run/agent.pid"), "utf8"));
  }

  /** The host dies: every process of the machine killed, its network namespace deleted. */
  async killHost(m: string): Promise<void> {
    const r = await this.ctl(["machine", "kill", m]);
    if (r.code !== 0) throw new Error(`ctl machine kill ${m}: ${r.stderr}`);
    execFileSync("ip", ["netns", "del", `flt-${m}`]);
    this.dead.add(m);
  }

  /** One GET of a machine's published port through the ingress mesh. */
  async get(m: string, port = 8080): Promise<string | undefined> {
    try {
      const res = await fetch(`http://${this.ips[m]}:${port}/`, { signal: AbortSignal.timeout(2000) });
      return res.status === 200 ? (await res.text()).trim() : undefined;
    } catch {
      return undefined;
    }
  }

  async down(): Promise<void> {
    if (this.api && this.api.exitCode === null) {
      for (const m of this.machines) await this.ctl(["machine", "rm", "-f", "-y", m]).catch(() => undefined);
    }
    await this.killApi();
    this.registryForward?.close();
    await this.registry?.stop();
    await this.stack("down").catch(() => undefined);
    removeLeftovers(this.machines, this.bridge);
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/**
 * Polls every machine's published port every `everyMs` until stopped: how many requests were
 * made and how many failed, with the first failure.
 */
export function pollIngress(
  lab: FaultLab,
  machines: string[],
  everyMs = 250,
): { stop(): Promise<{ requests: number; failures: number; firstFailure?: string }> } {
  let stopped = false;
  let requests = 0;
  let failures = 0;
  let firstFailure: string | undefined;
  const loop = (async () => {
    while (!stopped) {
      await Promise.all(
        machines.map(async (m) => {
          requests++;
          if ((await lab.get(m)) === undefined) {
            failures++;
            firstFailure ??= `${m} at ${new Date().toISOString()}`;
          }
        }),
      );
      await sleep(everyMs);
    }
  })();
  return {
    stop: async () => {
      stopped = true;
      await loop;
      return { requests, failures, firstFailure };
    },
  };
}
