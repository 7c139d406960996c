// A simulated agent: an in-process HTTP server speaking the Engine API surface engine-client
// uses (ping, images/create, containers create/start/stop/kill/delete/json/inspect/logs, and
// Flotilla's launch batch), which only records containers — nothing runs — plus the heartbeat
// loop a real agent runs. Many of them fit in one test process, so tests and the control-plane
// bench can run many nodes.
import { Agent as HttpAgent, createServer, request, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { randomBytes } from "node:crypto";
import { jitteredBeatDelayMs } from "@flotilla/core";
import { muxFrame } from "@flotilla/engine-client";

/** A container as the simulated engine records it. */
export interface SimContainer {
  id: string;
  name: string;
  image: string;
  labels: Record<string, string>;
  state: "created" | "running" | "exited";
  exitCode: number;
  oomKilled: boolean;
  startedAt?: string;
  finishedAt?: string;
  env: string[];
  memory: number;
  /** Port bindings as inspect reports them: `"80/tcp"` → host port (dynamic ones picked here). */
  ports: Record<string, { HostIp: string; HostPort: string }[]>;
  /** The create call's NetworkingConfig (overlay attachments), as sent. */
  networking?: unknown;
}

/** The fields of a create body the simulated engine records. */
interface SimCreateBody {
  Image: string;
  Labels?: Record<string, string>;
  Env?: string[];
  HostConfig?: { Memory?: number; PortBindings?: Record<string, { HostPort?: string }[]> };
  NetworkingConfig?: unknown;
}

/** The routing mesh's table as the control plane last sent it. */
export interface SimIngressTable {
  version: string;
  ports: { port: number; protocol: string; serviceId: string; serviceName: string; backends: { host: string; port: number }[] }[];
}

export interface SimAgentOptions {
  hostname: string;
  /**
   * Control plane URL and token for heartbeats; without them no heartbeats are sent. Several
   * URLs (comma-separated, API replicas) are used in turn: a failed beat moves to the next.
   */
  apiUrl?: string;
  token?: string;
  /** The pace until the control plane's first reply; then the reply's heartbeatMs, as a real agent. */
  heartbeatMs?: number;
  labels?: Record<string, string>;
  nanoCpus?: number;
  memoryBytes?: number;
  /** Images the engine already has; others answer 404 on create until pulled. */
  images?: string[];
  /** The loopback address the engine listens on (default 127.0.0.1): distinct nodes, distinct addresses. */
  bindAddress?: string;
  /** false: an agent from before launch batches (the route answers 404). Default true. */
  launchBatches?: boolean;
  /**
   * Watch the ingress and overlay network tables as a real agent does: long polls held by the
   * API (GET /api/v1/nodes/ingress and /nodes/networks, 50 s each, again at once after each
   * answer), and `networksVersion` in its beats once it has a table. Default false.
   */
  watchTables?: boolean;
}

// The table watches' connections. Not fetch's: its pool looks for a free connection among all of
// an origin's, and with thousands of polls held open in one process that search was most of the
// simulated fleet's CPU (a real agent holds two).
const watchConnections = new HttpAgent({ keepAlive: true });

/** A long poll's GET over plain HTTP: its status and body. */
function longPoll(url: string, token: string | undefined, signal: AbortSignal): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { agent: watchConnections, headers: { authorization: `Bearer ${token}` }, signal }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => (body += chunk));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end();
  });
}

// Simulated nodes all live at 127.0.0.1: dynamic host ports are unique per process, as they
// would be per node, so every task's endpoint differs.
let nextDynamicPort = 32768;

/** One simulated node: its engine and its heartbeat loop. */
export class SimAgent {
  readonly containers = new Map<string, SimContainer>();
  readonly images: Set<string>;
  /** Engine API calls received, for assertions ("POST /containers/create"). */
  readonly calls: string[] = [];
  private server?: Server;
  private timer?: NodeJS.Timeout;
  private paused = false;
  url = "";
  lastHeartbeatStatus?: number;
  /** Round trips of the heartbeats sent (ms), and how many got no answer or an error. */
  readonly heartbeatMs: number[] = [];
  /** The API's own share of each answered beat (its Server-Timing header), in step with heartbeatMs where the API said it. */
  readonly heartbeatServerMs: number[] = [];
  /** The beats that took a second or more: when each was sent (epoch ms), and the API's share. */
  readonly slowBeats: { sentAt: number; ms: number; serverMs?: number }[] = [];
  heartbeatFailures = 0;
  /** Heartbeats the control plane answered with success. */
  heartbeatsOk = 0;
  nodeId?: string;
  ingress?: SimIngressTable;
  /** The current pace: the control plane's heartbeatMs once it answered. */
  intervalMs: number;
  private apiUrlIndex = 0;
  private stopped = false;
  /** The overlay network table's version, as the API last sent it (watchTables). */
  private networksVersion?: string;
  /** Tables received by the long polls (watchTables). */
  readonly tablesReceived = { ingress: 0, networks: 0 };
  private readonly watches = new AbortController();

  constructor(readonly opts: SimAgentOptions) {
    this.images = new Set(opts.images ?? []);
    this.intervalMs = opts.heartbeatMs ?? 5_000;
  }

  async start(): Promise<this> {
    this.server = createServer((req, res) => {
      this.handle(req, res).catch((e: Error) => send(res, 500, { message: e.message }));
    });
    this.server.keepAliveTimeout = 60_000;
    const host = this.opts.bindAddress ?? "127.0.0.1";
    await new Promise<void>((r) => this.server!.listen(0, host, r));
    const addr = this.server.address() as { port: number };
    this.url = `http://${host}:${addr.port}`;
    if (this.opts.apiUrl) {
      await this.heartbeat();
      this.schedule();
      if (this.opts.watchTables) {
        void this.watchTable("ingress");
        void this.watchTable("networks");
      }
    }
    return this;
  }

  /** One table's long poll, as the agent's table-watch.ts runs it, until stop(). */
  private async watchTable(what: "ingress" | "networks"): Promise<void> {
    const signal = this.watches.signal;
    const pause = () => new Promise((r) => setTimeout(r, 1_000));
    while (!signal.aborted) {
      const version = what === "ingress" ? this.ingress?.version : this.networksVersion;
      const urls = this.opts.apiUrl!.split(",");
      const query = new URLSearchParams({
        waitMs: "50000",
        ...(version ? { version } : {}),
        ...(what === "networks" ? { node: this.opts.hostname } : {}),
      });
      try {
        const res = await longPoll(`${urls[this.apiUrlIndex % urls.length]}/api/v1/nodes/${what}?${query}`, this.opts.token, signal);
        if (res.status === 200) {
          const table = JSON.parse(res.body) as { version: string };
          if (what === "ingress") this.ingress = table as SimIngressTable;
          else this.networksVersion = table.version;
          this.tablesReceived[what]++;
        } else if (res.status !== 204) await pause();
      } catch {
        if (!signal.aborted) await pause();
      }
    }
  }

  /**
   * Beats every intervalMs, counted from each beat's start (a slow reply does not slow the pace),
   * each wait shortened at random as the agent's (jitteredBeatDelayMs).
   */
  private schedule(): void {
    if (this.stopped) return;
    this.timer = setTimeout(
      () => {
        void this.heartbeat();
        this.schedule();
      },
      jitteredBeatDelayMs(this.intervalMs, Math.random()),
    );
  }

  /** Stops heartbeats (the node looks dead to the control plane) but keeps the engine up. */
  pauseHeartbeats(): void {
    this.paused = true;
  }

  resumeHeartbeats(): void {
    this.paused = false;
  }

  /** Makes a task's container exit by itself, as a crash would. */
  exit(taskId: string, exitCode: number, oom = false): void {
    for (const c of this.containers.values()) {
      if (c.labels["flotilla.task.id"] === taskId && c.state === "running") {
        Object.assign(c, { state: "exited", exitCode, oomKilled: oom, finishedAt: new Date().toISOString() });
      }
    }
  }

  running(): SimContainer[] {
    return [...this.containers.values()].filter((c) => c.state === "running");
  }

  async heartbeat(): Promise<void> {
    if (this.paused || !this.opts.apiUrl) return;
    const body = {
      hostname: this.opts.hostname,
      engineUrl: this.url,
      resources: { nanoCpus: this.opts.nanoCpus ?? 4_000_000_000, memoryBytes: this.opts.memoryBytes ?? 8 * 1024 ** 3 },
      labels: this.opts.labels ?? {},
      ...(this.ingress ? { ingressVersion: this.ingress.version } : {}),
      // As the agent: the version of the table in force, once it has one.
      ...(this.networksVersion !== undefined ? { networksVersion: this.networksVersion } : {}),
      containers: [...this.containers.values()].map((c) => ({
        id: c.id,
        labels: c.labels,
        state: c.state === "exited" ? "exited" : c.state === "running" ? "running" : "created",
        exitCode: c.exitCode,
        oomKilled: c.oomKilled,
        ...(c.startedAt ? { startedAt: c.startedAt } : {}),
        ...(c.finishedAt ? { finishedAt: c.finishedAt } : {}),
      })),
    };
    const sent = Date.now();
    const urls = this.opts.apiUrl.split(",");
    const apiUrl = urls[this.apiUrlIndex % urls.length];
    try {
      const res = await fetch(`${apiUrl}/api/v1/nodes/heartbeat`, {
        method: "POST",
        headers: { "content-type": "application/json", authorization: `Bearer ${this.opts.token}` },
        body: JSON.stringify(body),
      });
      this.lastHeartbeatStatus = res.status;
      const ms = Date.now() - sent;
      this.heartbeatMs.push(ms);
      const server = /dur=([\d.]+)/.exec(res.headers.get("server-timing") ?? "");
      if (server) this.heartbeatServerMs.push(Number(server[1]));
      if (ms >= 1_000) this.slowBeats.push({ sentAt: sent, ms, ...(server ? { serverMs: Number(server[1]) } : {}) });
      if (!res.ok) this.heartbeatFailures++;
      if (res.status >= 500) this.apiUrlIndex++;
      if (res.ok) {
        this.heartbeatsOk++;
        const reply = (await res.json()) as {
          nodeId: string;
          heartbeatMs?: number;
          ingress?: SimIngressTable;
          networks?: { version: string };
        };
        if (reply.networks) this.networksVersion = reply.networks.version;
        this.nodeId = reply.nodeId;
        if (typeof reply.heartbeatMs === "number" && reply.heartbeatMs > 0) this.intervalMs = reply.heartbeatMs;
        if (reply.ingress) this.ingress = reply.ingress;
      } else await res.body?.cancel();
    } catch {
      // The API may be restarting; the next beat tries again, at the next replica if any.
      this.heartbeatFailures++;
      this.apiUrlIndex++;
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.watches.abort();
    clearTimeout(this.timer);
    this.timer = undefined;
    if (this.server) {
      this.server.closeAllConnections();
      await new Promise<void>((r) => this.server!.close(() => r()));
    }
  }

  /** Records a container as create does; with `adopt`, a name already taken is that container (a launch batch). */
  private create(name: string, b: SimCreateBody, adopt = false): { id: string } | { status: number; message: string } {
    const ports = Object.fromEntries(
      Object.entries(b.HostConfig?.PortBindings ?? {}).map(([key, [binding]]) => [
        key,
        [{ HostIp: "0.0.0.0", HostPort: binding?.HostPort || String(nextDynamicPort++) }],
      ]),
    );
    const image = b.Image.includes(":") ? b.Image : `${b.Image}:latest`;
    if (!this.images.has(image)) return { status: 404, message: `No such image: ${image}` };
    const taken = this.find(name);
    if (taken && adopt) return { id: taken.id };
    if (taken) return { status: 409, message: `Conflict. The container name "/${name}" is already in use` };
    const id = randomBytes(32).toString("hex");
    this.containers.set(id, {
      id,
      name,
      image,
      labels: b.Labels ?? {},
      state: "created",
      exitCode: 0,
      oomKilled: false,
      env: b.Env ?? [],
      memory: b.HostConfig?.Memory ?? 0,
      ports,
      ...(b.NetworkingConfig !== undefined ? { networking: b.NetworkingConfig } : {}),
    });
    return { id };
  }

  private find(ref: string): SimContainer | undefined {
    return this.containers.get(ref) ?? [...this.containers.values()].find((c) => c.name === ref || c.id.startsWith(ref));
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const u = new URL(req.url ?? "/", "http://sim");
    const path = u.pathname.replace(/^\/v\d+\.\d+/, "");
    this.calls.push(`${req.method} ${path.replace(/^\/containers\/(?!create$|json$)[^/]+/, "/containers/{id}")}`);
    const body = req.method === "POST" ? await readJson(req) : undefined;
    if (path === "/_ping") return void res.end("OK");
    if (req.method === "POST" && path === "/images/create") {
      const image = `${u.searchParams.get("fromImage")}:${u.searchParams.get("tag") ?? "latest"}`;
      this.images.add(image);
      res.writeHead(200, { "content-type": "application/json" });
      return void res.end(JSON.stringify({ status: `Downloaded ${image}` }) + "\n");
    }
    if (req.method === "POST" && path === "/containers/create") {
      const r = this.create(u.searchParams.get("name") ?? randomBytes(6).toString("hex"), body as SimCreateBody);
      return "message" in r ? send(res, r.status, { message: r.message }) : send(res, 201, { Id: r.id, Warnings: [] });
    }
    if (req.method === "POST" && path === "/flotilla/containers/launch" && this.opts.launchBatches !== false) {
      const launches = (body as { Launches: { Name: string; Config: SimCreateBody }[] }).Launches;
      const results = launches.map(({ Name, Config }) => {
        const r = this.create(Name, Config, true);
        if ("message" in r) return { Name, Status: r.status, Message: r.message };
        const c = this.containers.get(r.id)!;
        if (c.state !== "running") Object.assign(c, { state: "running", startedAt: new Date().toISOString(), finishedAt: undefined });
        return { Name, Id: c.id, Ports: c.ports };
      });
      return send(res, 200, { Results: results });
    }
    if (req.method === "GET" && path === "/containers/json") {
      const filters = JSON.parse(u.searchParams.get("filters") ?? "{}") as { label?: string[] };
      const list = [...this.containers.values()].filter((c) =>
        (filters.label ?? []).every((l) => {
          const [k, v] = l.split("=", 2);
          return v === undefined ? k in c.labels : c.labels[k] === v;
        }),
      );
      return send(
        res,
        200,
        list.map((c) => ({
          Id: c.id,
          Names: [`/${c.name}`],
          Image: c.image,
          Labels: c.labels,
          State: c.state,
          Status: c.state,
          Created: 0,
        })),
      );
    }
    const m = /^\/containers\/([^/]+)(?:\/(\w+))?$/.exec(path);
    const c = m ? this.find(decodeURIComponent(m[1])) : undefined;
    if (!m) return send(res, 404, { message: `page not found: ${path}` });
    if (!c) return send(res, 404, { message: `No such container: ${m[1]}` });
    const action = `${req.method} ${m[2] ?? ""}`;
    const now = new Date().toISOString();
    switch (action) {
      case "POST start":
        if (c.state === "running") return void res.writeHead(304).end();
        Object.assign(c, { state: "running", startedAt: now, finishedAt: undefined });
        return void res.writeHead(204).end();
      case "POST stop":
        if (c.state !== "running") return void res.writeHead(304).end();
        Object.assign(c, { state: "exited", exitCode: 143, finishedAt: now });
        return void res.writeHead(204).end();
      case "POST kill":
        if (c.state !== "running") return send(res, 409, { message: `Container ${c.id} is not running` });
        Object.assign(c, { state: "exited", exitCode: 137, finishedAt: now });
        return void res.writeHead(204).end();
      case "DELETE ":
        if (c.state === "running" && u.searchParams.get("force") !== "1") {
          return send(res, 409, { message: `cannot remove a running container ${c.id}: stop it first` });
        }
        this.containers.delete(c.id);
        return void res.writeHead(204).end();
      case "GET json":
        return send(res, 200, {
          Id: c.id,
          Name: `/${c.name}`,
          Config: { Image: c.image, Labels: c.labels },
          State: {
            Status: c.state,
            Running: c.state === "running",
            ExitCode: c.exitCode,
            OOMKilled: c.oomKilled,
            StartedAt: c.startedAt ?? "",
            FinishedAt: c.finishedAt ?? "",
          },
          NetworkSettings: { Ports: c.ports },
        });
      case "GET logs": {
        res.writeHead(200, { "content-type": "application/vnd.docker.multiplexed-stream" });
        res.write(muxFrame("stdout", `hello from ${c.name}\n`));
        res.write(muxFrame("stderr", `${c.image} started\n`));
        if (u.searchParams.get("follow") !== "1" || c.state !== "running") return void res.end();
        // Follow: a line a while until the container stops or the reader goes away.
        const tick = setInterval(() => {
          if (c.state !== "running" || !this.containers.has(c.id)) {
            clearInterval(tick);
            res.end();
          } else res.write(muxFrame("stdout", `tick ${new Date().toISOString()}\n`));
        }, 200);
        res.on("close", () => clearInterval(tick));
        return;
      }
    }
    send(res, 404, { message: `not implemented by the simulated agent: ${req.method} ${path}` });
  }
}

/** Starts `count` simulated agents named `${prefix}-1..count`, heartbeating to the API. */
export async function startSimAgents(
  count: number,
  opts: Omit<SimAgentOptions, "hostname"> & { prefix?: string; labelsOf?: (i: number) => Record<string, string> },
): Promise<SimAgent[]> {
  const agents: SimAgent[] = [];
  for (let i = 1; i <= count; i++) {
    agents.push(
      await new SimAgent({ ...opts, hostname: `${opts.prefix ?? "sim"}-${i}`, labels: opts.labelsOf?.(i) ?? opts.labels ?? {} }).start(),
    );
  }
  return agents;
}

function send(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { "content-type": "application/json" });
  res.end(JSON.stringify(body));
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  const text = Buffer.concat(chunks).toString("utf8");
  return text ? JSON.parse(text) : undefined;
}
