/**
 * Heartbeats from the agent to the control plane: `POST <apiUrl>/api/v1/nodes/heartbeat` with the
 * node's identity, resources and containers. The first beat registers the node; the reply's
 * nodeId is sent with every later beat, and its heartbeatMs sets the pace. A failed beat is
 * retried with exponential backoff (from the interval, at most 60s apart); beats never overlap.
 * Every wait, between beats or retries, is shortened by up to a tenth at random (libs/core
 * jitteredBeatDelayMs), so that agents once in step drift apart instead of beating as one burst
 * every period. A container list that cannot be read skips the beat rather than report none,
 * which the control plane would take as every container gone. Each beat also carries the version
 * of the ingress table the agent serves; a reply with a different table delivers it. The beat
 * does not wait for a table to be applied: applying is iptables work that takes seconds on a slow
 * machine (a TCG guest on a busy host), and a beat held that long reads as a node gone silent, so
 * the control plane would declare it down and move its tasks away. Tables from replies are
 * applied one at a time beside the beats, the newest waiting one replacing an older one; beats
 * report the version in force, so until a table is applied the replies carry it again.
 */
import { hostname as osHostname } from "node:os";
import { jitteredBeatDelayMs, parseReplicaUrls } from "@flotilla/core";
import type { IngressTable } from "../ingress/ingress-types";
import { watchIngress } from "./ingress-watch";
import { fetchTableNow, watchTable } from "./table-watch";

/** Where the control plane serves a node's overlay network table (a NodeNetworkTable). */
export const NETWORKS_PATH = "/api/v1/nodes/networks";

export interface HeartbeatContainer {
  id: string;
  labels: Record<string, string>;
  state: "created" | "running" | "exited";
  exitCode?: number;
  oomKilled?: boolean;
  /** The health check's status while running, when the container has one. */
  health?: "starting" | "healthy" | "unhealthy";
  /** The last failed probe's output (truncated), while running. */
  healthOutput?: string;
  startedAt?: string;
  finishedAt?: string;
}

export interface HeartbeatResources {
  nanoCpus: number;
  memoryBytes: number;
}

export interface HeartbeatOptions {
  /** Control plane base URL: http://127.0.0.1:8080. */
  apiUrl: string;
  /** Bearer API token. */
  token: string;
  /** Where the control plane reaches this agent: https://IP:2376. */
  engineUrl: string;
  /** Default: the host name (a netns machine's own, from its UTS namespace). */
  hostname?: string;
  labels?: Record<string, string>;
  /** Until the control plane says otherwise. Default 5000. */
  intervalMs?: number;
  listContainers: () => Promise<HeartbeatContainer[]>;
  resources: HeartbeatResources | (() => HeartbeatResources | Promise<HeartbeatResources>);
  /** Remembered node id (e.g. from a previous run), sent with the first beat. */
  nodeId?: string;
  /** Called with each new node id, to persist it. */
  onNodeId?: (nodeId: string) => void;
  log?: (message: string) => void;
  /** Per-request limit. Default 10s. */
  requestTimeoutMs?: number;
  /**
   * Upper bound of the retry backoff until the control plane names its own (its recovery grace
   * after an outage counts on agents retrying at least this often). Default 60s.
   */
  maxBackoffMs?: number;
  /** Version of the ingress table in force, sent as `ingressVersion`; undefined: none yet. */
  ingressVersion?: () => string | undefined;
  /**
   * Called when a reply names a different list of API replicas (`apiUrls`): beats and the ingress
   * watch follow it from then on; this persists it, so a restart keeps it.
   */
  onApiUrls?: (urls: string[]) => void;
  /** Called with the ingress table of a reply that has one; a failure is logged, the beat still counts. */
  onIngress?: (table: IngressTable) => void | Promise<void>;
  /**
   * Also long-poll the control plane for the ingress table (GET /api/v1/nodes/ingress), so a
   * change arrives at once rather than with the next beat. Default true when onIngress is set.
   */
  watchIngress?: boolean;
  /** Version of the overlay network table in force, sent as `networksVersion`; undefined: none yet. */
  networksVersion?: () => string | undefined;
  /** Called with the network table of a reply that has one (`networks`), or of the long poll. */
  onNetworks?: (table: unknown) => void | Promise<void>;
  /** Also long-poll GET /api/v1/nodes/networks. Default true when onNetworks is set. */
  watchNetworks?: boolean;
}

export interface BeatResult {
  ok: boolean;
  status?: number;
  error?: string;
}

export interface Heartbeats {
  /** The node id the control plane assigned, once known. */
  readonly nodeId: string | undefined;
  /** Current pace (the control plane's heartbeatMs once it answered). */
  readonly intervalMs: number;
  /** Current retry cap (the control plane's maxBackoffMs once it answered). */
  readonly maxBackoffMs: number;
  /** Beats at once (waits for a beat in flight first). */
  beatNow(): Promise<BeatResult>;
  /** The overlay network table now (GET /api/v1/nodes/networks without version); undefined when no API answers with one. */
  fetchNetworks(): Promise<unknown>;
  /** Stops beating; aborts a beat in flight. */
  stop(): Promise<void>;
}

/** The longest heartbeat period the agent accepts from a reply. */
export const MAX_INTERVAL_MS = 600_000;

/** The wait before retry number `failures` (1-based): doubling from the interval, never above the cap nor below the interval. */
export function retryDelayMs(failures: number, intervalMs: number, maxBackoffMs: number): number {
  return Math.max(intervalMs, Math.min(maxBackoffMs, intervalMs * 2 ** Math.min(failures - 1, 16)));
}

export function startHeartbeats(options: HeartbeatOptions): Heartbeats {
  // Several API replicas (a comma-separated FLOTILLA_API_URL): beats go to one until it fails
  // (no answer or a 5xx), then to the next. Replies may name a newer list (replicas added or
  // removed since this machine was provisioned), which replaces it.
  let urls = apiUrls(options.apiUrl);
  let current = 0;
  const log = options.log ?? (() => {});

  /** Follows the replica list of a reply from `answered`, staying with `answered`. */
  function adoptUrls(listed: unknown, answered: string): void {
    if (!Array.isArray(listed) || !listed.length || !listed.every((u) => typeof u === "string")) return;
    let next: string[];
    try {
      next = parseReplicaUrls(listed.join(","), "apiUrls");
    } catch (e) {
      log(`heartbeat: ignoring the control plane's replica list: ${(e as Error).message}`);
      return;
    }
    if (!next.length) return;
    // The replica that answered stays in the list even when it does not name itself (a load
    // balancer's or a loopback address the agent was given): it is known to be reachable.
    if (!next.includes(answered)) next = [answered, ...next];
    if (next.join(",") === urls.join(",")) return;
    urls = next;
    current = next.indexOf(answered);
    log(`heartbeat: the control plane's replicas are now ${next.join(", ")}`);
    options.onApiUrls?.(next);
  }
  let maxBackoff = options.maxBackoffMs ?? 60_000;
  let interval = options.intervalMs ?? 5000;
  let nodeId = options.nodeId;
  let failures = 0;
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let inFlight: Promise<BeatResult> | undefined;
  const controller = new AbortController();
  const ingressApplier = options.onIngress ? newestTableApplier("ingress", options.onIngress, log) : undefined;
  const networksApplier = options.onNetworks ? newestTableApplier("network", options.onNetworks, log) : undefined;

  async function send(): Promise<BeatResult> {
    let containers: HeartbeatContainer[];
    let resources: HeartbeatResources;
    try {
      containers = await options.listContainers();
      resources = typeof options.resources === "function" ? await options.resources() : options.resources;
    } catch (e) {
      return { ok: false, error: `cannot list containers: ${(e as Error).message}` };
    }
    const ingressVersion = options.ingressVersion?.();
    const networksVersion = options.networksVersion?.();
    const body = {
      ...(nodeId ? { nodeId } : {}),
      hostname: options.hostname ?? osHostname(),
      engineUrl: options.engineUrl,
      resources,
      labels: options.labels ?? {},
      containers,
      ...(ingressVersion !== undefined ? { ingressVersion } : {}),
      ...(networksVersion !== undefined ? { networksVersion } : {}),
    };
    let res: Response;
    const base = urls[current % urls.length];
    const url = `${base}/api/v1/nodes/heartbeat`;
    try {
      res = await fetch(url, {
        method: "POST",
        headers: { authorization: `Bearer ${options.token}`, "content-type": "application/json" },
        body: JSON.stringify(body),
        signal: AbortSignal.any([controller.signal, AbortSignal.timeout(options.requestTimeoutMs ?? 10_000)]),
      });
    } catch (e) {
      const cause = (e as { cause?: { code?: string } }).cause?.code;
      current++;
      return { ok: false, error: `${url}: ${cause ?? (e as Error).message}` };
    }
    const text = await res.text().catch(() => "");
    if (!res.ok) {
      if (res.status >= 500) current++;
      // A node id the control plane no longer knows: register afresh next time.
      if (res.status === 404 && nodeId) nodeId = undefined;
      let message = text;
      try {
        message = (JSON.parse(text) as { message?: string }).message ?? text;
      } catch {
        // not JSON
      }
      return { ok: false, status: res.status, error: `HTTP ${res.status}: ${message.slice(0, 200)}` };
    }
    let ingress: IngressTable | undefined;
    let networks: unknown;
    try {
      const reply = JSON.parse(text) as {
        nodeId?: string;
        heartbeatMs?: number;
        maxBackoffMs?: number;
        ingress?: IngressTable;
        networks?: unknown;
        apiUrls?: unknown;
      };
      adoptUrls(reply.apiUrls, base);
      if (reply.nodeId && reply.nodeId !== nodeId) {
        nodeId = reply.nodeId;
        options.onNodeId?.(reply.nodeId);
        log(`heartbeat: registered as node ${reply.nodeId}`);
      }
      // The control plane stretches the period as the cluster grows (never past 10 minutes, its
      // FLOTILLA_HEARTBEAT_MS limit): a longer one is not believed.
      if (typeof reply.heartbeatMs === "number" && reply.heartbeatMs > 0) interval = Math.min(reply.heartbeatMs, MAX_INTERVAL_MS);
      if (typeof reply.maxBackoffMs === "number" && reply.maxBackoffMs > 0) maxBackoff = reply.maxBackoffMs;
      if (typeof reply.ingress === "object" && reply.ingress !== null) ingress = reply.ingress;
      if (typeof reply.networks === "object" && reply.networks !== null) networks = reply.networks;
    } catch {
      return { ok: false, status: res.status, error: "reply is not JSON" };
    }
    // Not awaited: see the module comment. A table that fails to apply is logged by the applier;
    // the version stays the old one, so the next reply carries the table again. A reply to a beat
    // sent before the table in force was applied may carry that very table: nothing to do then.
    if (ingress && ingress.version !== options.ingressVersion?.()) ingressApplier?.offer(ingress);
    const replyNetworksVersion = (networks as { version?: unknown } | null | undefined)?.version;
    if (networks !== undefined && (replyNetworksVersion === undefined || replyNetworksVersion !== options.networksVersion?.()))
      networksApplier?.offer(networks);
    return { ok: true, status: res.status };
  }

  function beat(): Promise<BeatResult> {
    if (inFlight) return inFlight;
    inFlight = send().finally(() => (inFlight = undefined));
    return inFlight;
  }

  function schedule(delay: number): void {
    if (stopped) return;
    timer = setTimeout(() => void tick(), delay);
    timer.unref?.();
  }

  async function tick(): Promise<void> {
    const r = await beat();
    if (stopped) return;
    if (r.ok) {
      if (failures > 0) log(`heartbeat: control plane answers again after ${failures} failed beat(s)`);
      failures = 0;
      schedule(jitteredBeatDelayMs(interval, Math.random()));
    } else {
      failures++;
      if (failures === 1 || failures % 10 === 0) log(`heartbeat failed (${failures}x): ${r.error}`);
      schedule(jitteredBeatDelayMs(retryDelayMs(failures, interval, maxBackoff), Math.random()));
    }
  }

  schedule(0);
  const watching =
    options.onIngress && options.watchIngress !== false
      ? watchIngress({
          urls: () => urls,
          token: options.token,
          version: () => options.ingressVersion?.(),
          apply: async (table) => {
            await options.onIngress!(table);
          },
          retryMs: () => interval,
          log,
          signal: controller.signal,
        })
      : Promise.resolve();
  const watchingNetworks =
    options.onNetworks && options.watchNetworks !== false
      ? watchTable<{ version?: unknown }>({
          what: "networks",
          path: NETWORKS_PATH,
          urls: () => urls,
          token: options.token,
          version: () => options.networksVersion?.(),
          apply: async (table) => {
            await options.onNetworks!(table);
          },
          retryMs: () => interval,
          log,
          signal: controller.signal,
        })
      : Promise.resolve();

  return {
    get nodeId() {
      return nodeId;
    },
    get intervalMs() {
      return interval;
    },
    get maxBackoffMs() {
      return maxBackoff;
    },
    beatNow: () => (inFlight ?? Promise.resolve()).then(() => beat()),
    async fetchNetworks() {
      const r = await fetchTableNow(urls, NETWORKS_PATH, options.token);
      if (r.table === undefined) log(`networks: no table fetched (${r.errors.join("; ") || "no API URL"})`);
      return r.table;
    },
    async stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
      controller.abort(new Error("heartbeats stopped"));
      await inFlight?.catch(() => undefined);
      // A table being applied finishes first (the caller closes the data plane after stop()).
      await ingressApplier?.stop();
      await networksApplier?.stop();
      await watching;
      await watchingNetworks;
    },
  };
}

/** Applies tables one at a time, off the caller's path. */
export interface TableApplier<T> {
  /** Applies `table` once the one being applied is done; replaces a table still waiting. */
  offer(table: T): void;
  /** Drops a waiting table and resolves when the one being applied is done. */
  stop(): Promise<void>;
}

/**
 * An applier of `what` tables (for log lines: "ingress", "network"): one application at a time,
 * and of the tables offered meanwhile only the last waits, since each table is whole and a newer
 * one supersedes it. So a data plane slower than the beats costs at most one waiting table.
 */
export function newestTableApplier<T>(
  what: string,
  apply: (table: T) => void | Promise<void>,
  log: (message: string) => void,
): TableApplier<T> {
  let waiting: { table: T } | undefined;
  let running: Promise<void> | undefined;
  // Not `running`: an apply that throws at once ends drain() before offer() stores its promise.
  let draining = false;
  let stopped = false;
  // Every reply carries a table not applied yet: its refusal is logged once, not at every beat.
  let lastRefusal: string | undefined;
  async function drain(): Promise<void> {
    for (let next = waiting; next && !stopped; next = waiting) {
      waiting = undefined;
      try {
        await apply(next.table);
        lastRefusal = undefined;
      } catch (e) {
        const message = `heartbeat: ${what} table ${String((next.table as { version?: unknown } | null)?.version)} not applied: ${(e as Error).message}`;
        if (message !== lastRefusal) log(message);
        lastRefusal = message;
      }
    }
    draining = false;
    running = undefined;
  }
  return {
    offer(table) {
      if (stopped) return;
      waiting = { table };
      if (draining) return;
      draining = true;
      running = drain();
    },
    async stop() {
      stopped = true;
      waiting = undefined;
      await running;
    },
  };
}

/** The API URLs in FLOTILLA_API_URL: one, or several replicas separated by commas. */
export function apiUrls(apiUrl: string): string[] {
  return apiUrl
    .split(",")
    .map((u) => u.trim().replace(/\/+$/, ""))
    .filter(Boolean);
}
