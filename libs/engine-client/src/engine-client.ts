// A typed client for the agent's Engine API (a Docker Engine API subset): over HTTP, HTTPS with
// mutual TLS, or a unix socket. Only node: modules, so it runs anywhere the control plane does.
import http from "node:http";
import https from "node:https";
import { LogDemuxer } from "./demux";
import { EngineConflictError, EngineNotFoundError, EngineUnreachableError, engineError } from "./errors";
import type { ContainerCreateBody, ContainerInspect, ContainerSummary, EngineClientOptions, LaunchResult, LogChunk } from "./types";

interface Target {
  readonly transport: typeof http | typeof https;
  readonly base: http.RequestOptions;
}

function target(opts: EngineClientOptions): Target {
  const u = new URL(opts.url);
  if (u.protocol === "unix:") {
    // Docker's clients name the host "docker" on a socket; over TCP the real host must stay in
    // Host, because https derives the certificate's expected name (SNI, SAN check) from it.
    return { transport: http, base: { socketPath: u.pathname, agent: new http.Agent({ keepAlive: true }), headers: { host: "docker" } } };
  }
  if (u.protocol === "https:") {
    const agent = new https.Agent({ keepAlive: true, ...(opts.tls ? { ca: opts.tls.ca, cert: opts.tls.cert, key: opts.tls.key } : {}) });
    return { transport: https, base: { host: u.hostname, port: u.port || 2376, agent } };
  }
  if (u.protocol === "http:") {
    return {
      transport: http,
      base: { host: u.hostname, port: u.port || 2375, agent: new http.Agent({ keepAlive: true, maxSockets: 16 }) },
    };
  }
  throw new Error(`unsupported engine URL ${opts.url}: use http://, https:// or unix://`);
}

/** Time a launch batch's request allows per container, beyond the client's timeout. */
export const LAUNCH_ALLOWANCE_MS = 1_000;

/** Options of a log read. */
export interface LogOptions {
  readonly follow?: boolean;
  /** Number of last lines, or "all" (default). */
  readonly tail?: number | "all";
  readonly signal?: AbortSignal;
}

/**
 * One agent's Engine API. Every method names its operation in errors: 404 → EngineNotFoundError,
 * 409 → EngineConflictError, other statuses → EngineError, no answer → EngineUnreachableError.
 */
export class EngineClient {
  private readonly target: Target;
  private readonly timeoutMs: number;

  constructor(readonly options: EngineClientOptions) {
    this.target = target(options);
    this.timeoutMs = options.timeoutMs ?? 30_000;
  }

  /** Closes pooled keep-alive connections. */
  close(): void {
    (this.target.base.agent as http.Agent | undefined)?.destroy();
  }

  /** `GET /_ping`: true when the agent answers OK. */
  async ping(): Promise<boolean> {
    const r = await this.call("ping", "GET", "/_ping");
    return r.status === 200;
  }

  /**
   * Pulls an image (`POST /images/create`), waiting until the pull finished; `registryAuth` is
   * Docker's X-Registry-Auth header value, for this pull only.
   */
  async pullImage(image: string, registryAuth?: string): Promise<void> {
    const at = image.lastIndexOf(":");
    const hasTag = at > image.lastIndexOf("/");
    const q = new URLSearchParams({ fromImage: hasTag ? image.slice(0, at) : image, tag: hasTag ? image.slice(at + 1) : "latest" });
    const r = await this.call(
      `pull ${image}`,
      "POST",
      `/images/create?${q}`,
      undefined,
      this.timeoutMs,
      registryAuth ? { "x-registry-auth": registryAuth } : {},
    );
    // Docker reports pull failures inside a 200 stream as {"error": ...} lines.
    const failed = r.body
      .toString("utf8")
      .split("\n")
      .map((l) => l.trim())
      .filter(Boolean)
      .map((l) => {
        try {
          return JSON.parse(l) as { error?: string };
        } catch {
          return {};
        }
      })
      .find((m) => m.error);
    if (failed?.error) throw engineError(`pull ${image}`, 500, failed.error);
  }

  /** Creates a container; pulls the image once if the agent does not have it (404), with `registryAuth` if given. */
  async createContainer(name: string, body: ContainerCreateBody, registryAuth?: string): Promise<string> {
    const op = `create container ${name}`;
    const send = () => this.json<{ Id: string }>(op, "POST", `/containers/create?name=${encodeURIComponent(name)}`, body);
    try {
      return (await send()).Id;
    } catch (e) {
      if (!(e instanceof EngineNotFoundError)) throw e;
      await this.pullImage(body.Image, registryAuth);
      return (await send()).Id;
    }
  }

  /**
   * Creates and starts many containers in one request (Flotilla agents only; see LaunchRequest).
   * `null` when the agent does not offer it (an older agent): the caller launches one by one.
   * Per-container failures come back as results; only an unreachable agent or a failed request
   * as a whole throws.
   */
  async launchContainers(launches: readonly { name: string; body: ContainerCreateBody }[]): Promise<LaunchResult[] | null> {
    const op = `launch ${launches.length} containers`;
    try {
      // One answer for many starts: a busy host's starts take a while each, and an unanswered
      // launch leaves its tasks claimed until the claim goes stale, so allow for each of them.
      const timeoutMs = this.timeoutMs + launches.length * LAUNCH_ALLOWANCE_MS;
      const body = { Launches: launches.map((l) => ({ Name: l.name, Config: l.body })) };
      const send = () => this.call(op, "POST", "/flotilla/containers/launch", body, timeoutMs);
      // A kept-alive connection the agent closed just as this request went out is reset. A launch
      // is idempotent by name, so it is sent once more on a new connection, rather than leaving
      // its tasks claimed and unanswered until the claim goes stale.
      const r = await send().catch((e: unknown) => {
        if (e instanceof EngineUnreachableError && e.connectionReset) return send();
        throw e;
      });
      const { Results } = JSON.parse(r.body.toString("utf8")) as { Results: LaunchResult[] };
      if (!Array.isArray(Results) || Results.length !== launches.length)
        throw engineError(
          op,
          502,
          `the agent answered ${Array.isArray(Results) ? Results.length : "no"} results for ${launches.length} launches`,
        );
      return Results;
    } catch (e) {
      // The route itself is unknown: an agent from before batches.
      if (e instanceof EngineNotFoundError) return null;
      throw e;
    }
  }

  /** Starts a container; starting a running one is not an error (304). */
  async startContainer(id: string): Promise<void> {
    await this.call(`start container ${id}`, "POST", `/containers/${encodeURIComponent(id)}/start`);
  }

  /**
   * Stops a container: SIGTERM, then SIGKILL after `timeoutSec` (the agent's job). If the stop
   * call itself fails for another reason than "gone", kills outright, so a stop always ends it.
   */
  async stopContainer(id: string, timeoutSec: number): Promise<void> {
    const op = `stop container ${id}`;
    try {
      // The agent waits up to timeoutSec before killing: allow for that in the request timeout.
      await this.call(
        op,
        "POST",
        `/containers/${encodeURIComponent(id)}/stop?t=${Math.max(0, Math.round(timeoutSec))}`,
        undefined,
        (timeoutSec + 10) * 1000,
      );
    } catch (e) {
      if (e instanceof EngineNotFoundError) throw e;
      await this.killContainer(id);
    }
  }

  /** `POST /containers/{id}/kill` (SIGKILL). A container that is not running is not an error. */
  async killContainer(id: string, signal = "SIGKILL"): Promise<void> {
    try {
      await this.call(`kill container ${id}`, "POST", `/containers/${encodeURIComponent(id)}/kill?signal=${signal}`);
    } catch (e) {
      if (!(e instanceof EngineConflictError)) throw e;
    }
  }

  /** Removes a container (`force` kills it first). */
  async removeContainer(id: string, force = false): Promise<void> {
    await this.call(`remove container ${id}`, "DELETE", `/containers/${encodeURIComponent(id)}?force=${force ? 1 : 0}`);
  }

  /** Lists containers, all states, optionally only those carrying every label given. */
  async listContainers(labels: Readonly<Record<string, string | true>> = {}): Promise<ContainerSummary[]> {
    const label = Object.entries(labels).map(([k, v]) => (v === true ? k : `${k}=${v}`));
    const q = new URLSearchParams({ all: "1" });
    if (label.length) q.set("filters", JSON.stringify({ label }));
    return this.json<ContainerSummary[]>("list containers", "GET", `/containers/json?${q}`);
  }

  /** `GET /containers/{id}/json`. */
  async inspectContainer(id: string): Promise<ContainerInspect> {
    return this.json<ContainerInspect>(`inspect container ${id}`, "GET", `/containers/${encodeURIComponent(id)}/json`);
  }

  /**
   * A container's logs, demultiplexed, as they arrive. With `follow` the iteration ends when the
   * container stops or `signal` aborts.
   */
  async *logs(id: string, opts: LogOptions = {}): AsyncGenerator<LogChunk> {
    const q = new URLSearchParams({ stdout: "1", stderr: "1", follow: opts.follow ? "1" : "0", tail: String(opts.tail ?? "all") });
    const op = `logs of container ${id}`;
    const res = await this.open(op, "GET", `/containers/${encodeURIComponent(id)}/logs?${q}`, undefined, opts.signal);
    if ((res.statusCode ?? 0) >= 400) {
      const body = await readAll(res);
      throw engineError(op, res.statusCode ?? 0, messageOf(body));
    }
    const demux = new LogDemuxer();
    try {
      for await (const chunk of res as AsyncIterable<Buffer>) yield* demux.push(chunk);
    } catch (e) {
      if (!opts.signal?.aborted) throw e;
    } finally {
      res.destroy();
    }
  }

  private async json<T>(op: string, method: string, path: string, body?: unknown): Promise<T> {
    const r = await this.call(op, method, path, body);
    return JSON.parse(r.body.toString("utf8")) as T;
  }

  private async call(
    op: string,
    method: string,
    path: string,
    body?: unknown,
    timeoutMs = this.timeoutMs,
    headers: Record<string, string> = {},
  ): Promise<{ status: number; body: Buffer }> {
    const ac = new AbortController();
    const timer = setTimeout(() => ac.abort(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
    try {
      const res = await this.open(op, method, path, body, ac.signal, headers);
      const data = await readAll(res).catch((e: unknown) => {
        // A body cut off by our own timeout reads as a reset: name the timeout instead.
        throw new EngineUnreachableError(op, this.options.url, ac.signal.aborted ? ac.signal.reason : e);
      });
      const status = res.statusCode ?? 0;
      if (status >= 400) throw engineError(op, status, messageOf(data));
      return { status, body: data };
    } finally {
      clearTimeout(timer);
    }
  }

  private open(
    op: string,
    method: string,
    path: string,
    body: unknown,
    signal?: AbortSignal,
    headers: Record<string, string> = {},
  ): Promise<http.IncomingMessage> {
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    return new Promise((resolve, reject) => {
      const req = this.target.transport.request(
        {
          ...this.target.base,
          method,
          path,
          signal,
          headers: {
            ...this.target.base.headers,
            ...headers,
            ...(payload ? { "content-type": "application/json", "content-length": payload.length } : {}),
          },
        },
        resolve,
      );
      req.on("error", (e) => reject(new EngineUnreachableError(op, this.options.url, signal?.aborted ? (signal.reason ?? e) : e)));
      req.end(payload);
    });
  }
}

function readAll(res: http.IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    res.on("data", (c: Buffer) => chunks.push(c));
    res.on("end", () => resolve(Buffer.concat(chunks)));
    res.on("error", reject);
  });
}

function messageOf(body: Buffer): string {
  const text = body.toString("utf8");
  try {
    return (JSON.parse(text) as { message?: string }).message ?? text;
  } catch {
    return text.trim() || "no message";
  }
}
