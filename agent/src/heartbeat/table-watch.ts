/**
 * The agent's long polls for tables the control plane keeps per node (the ingress table, the
 * overlay network table): `GET <api><path>?version=V&waitMs=MS` waits at the control plane until
 * the table differs from the one applied here (200 with the table, 204 when the wait ran out), so
 * a change reaches every node within a round trip instead of a heartbeat period. Heartbeat
 * replies still carry the tables, so a control plane without the route (404) or an outage of the
 * poll only costs speed. Several API URLs: the next one after a failure.
 *
 * A table refused as no table at all (InvalidError: the same content is refused again) is named
 * as the version held, so the poll waits for a different table instead of fetching the same one
 * every heartbeat period, and the refusal is logged once, not at every retry.
 */
import { InvalidError } from "@flotilla/core";

export interface TableWatchOptions<T extends { version?: unknown }> {
  /** For log lines: "ingress", "networks". */
  what: string;
  /** `/api/v1/nodes/ingress`. */
  path: string;
  /** API base URLs (several replicas: the next one after a failure); a function when the list may change. */
  urls: readonly string[] | (() => readonly string[]);
  token: string;
  /** The version applied here; undefined before the first. */
  version: () => string | undefined;
  apply: (table: T) => Promise<void>;
  /** Wait after a failure, and after a table that did not apply in full (the heartbeat pace). */
  retryMs: () => number;
  log: (message: string) => void;
  signal: AbortSignal;
  /**
   * How long the control plane may hold a poll. Default 50000: each answer is a new request, and
   * at 20 s, 5,000 agents' two polls were 500 requests a second of the API's time for nothing.
   */
  waitMs?: number;
}

const sleep = (ms: number, signal: AbortSignal) =>
  new Promise<void>((resolve) => {
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    }
    signal.addEventListener("abort", done, { once: true });
  });

/** Polls until `signal` aborts or the control plane has no such route. Never rejects. */
export async function watchTable<T extends { version?: unknown }>(o: TableWatchOptions<T>): Promise<void> {
  const waitMs = o.waitMs ?? 50_000;
  let current = 0;
  let failing = false;
  /** The table refused as invalid, while the version applied is still `held`. */
  let refused: { version: string; held: string | undefined } | undefined;
  let lastRefusal: string | undefined;
  while (!o.signal.aborted) {
    const held = o.version();
    if (refused && refused.held !== held) refused = undefined;
    const version = refused?.version ?? held;
    const urls = typeof o.urls === "function" ? o.urls() : o.urls;
    const base = urls[current % urls.length];
    const url = `${base}${o.path}?waitMs=${waitMs}${version !== undefined ? `&version=${encodeURIComponent(version)}` : ""}`;
    let res: Response;
    try {
      res = await fetch(url, {
        headers: { authorization: `Bearer ${o.token}` },
        signal: AbortSignal.any([o.signal, AbortSignal.timeout(waitMs + 10_000)]),
      });
    } catch (e) {
      if (o.signal.aborted) return;
      current++;
      if (!failing)
        o.log(`${o.what} watch: ${base}: ${(e as { cause?: { code?: string } }).cause?.code ?? (e as Error).message}; retrying`);
      failing = true;
      await sleep(o.retryMs(), o.signal);
      continue;
    }
    if (res.status === 204) {
      failing = false;
      continue;
    }
    const text = await res.text().catch(() => "");
    if (res.status === 404) {
      o.log(`${o.what} watch: the control plane has no GET ${o.path}; tables come with heartbeats only`);
      return;
    }
    if (!res.ok) {
      if (res.status >= 500) current++;
      if (!failing) o.log(`${o.what} watch: HTTP ${res.status}: ${text.slice(0, 200)}; retrying`);
      failing = true;
      await sleep(o.retryMs(), o.signal);
      continue;
    }
    failing = false;
    let table: T;
    try {
      table = JSON.parse(text) as T;
    } catch {
      await sleep(o.retryMs(), o.signal);
      continue;
    }
    try {
      await o.apply(table);
      lastRefusal = undefined;
    } catch (e) {
      const message = `${o.what} watch: table ${String(table.version)} not applied: ${(e as Error).message}`;
      if (message !== lastRefusal) o.log(message);
      lastRefusal = message;
      if (e instanceof InvalidError && typeof table.version === "string") {
        refused = { version: table.version, held: o.version() };
        continue;
      }
    }
    // Not applied in full (a failed restore, a port the proxy could not bind): the control plane
    // would answer again at once, so wait as a heartbeat would before asking again.
    if (o.version() !== table.version) await sleep(o.retryMs(), o.signal);
  }
}

/**
 * The current table at once (no version, no wait): each URL in turn until one answers 200.
 * undefined when none has it (404, 204, no answer); the reasons are logged by the caller.
 */
export async function fetchTableNow(
  urls: readonly string[],
  path: string,
  token: string,
  timeoutMs = 10_000,
): Promise<{ table?: unknown; errors: string[] }> {
  const errors: string[] = [];
  for (const base of urls) {
    try {
      const res = await fetch(`${base}${path}`, { headers: { authorization: `Bearer ${token}` }, signal: AbortSignal.timeout(timeoutMs) });
      const text = await res.text().catch(() => "");
      if (res.status === 200) return { table: JSON.parse(text) as unknown, errors };
      errors.push(`${base}: HTTP ${res.status}`);
      if (res.status < 500) break;
    } catch (e) {
      errors.push(`${base}: ${(e as { cause?: { code?: string } }).cause?.code ?? (e as Error).message}`);
    }
  }
  return { errors };
}
