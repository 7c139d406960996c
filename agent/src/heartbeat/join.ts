/**
 * How the agent gets the API token its heartbeats carry. The provisioner writes a one-time join
 * token (FLOTILLA_JOIN_TOKEN) into the agent's env file; on its first start the agent trades it at
 * `POST <api>/api/v1/nodes/join` for its own API token and keeps that in its state dir (0600), so
 * restarts need no join. A new join token in the env (the machine was re-provisioned) means the
 * control plane wants a fresh join: the saved token remembers which join token it came from.
 * An agent configured by hand with FLOTILLA_API_TOKEN uses that and never joins.
 */
import { createHash } from "node:crypto";
import { chmodSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { hostname as osHostname } from "node:os";
import { join as joinPath } from "node:path";
import { InvalidError } from "@flotilla/core";
import { apiUrls, startHeartbeats, type BeatResult, type HeartbeatOptions, type Heartbeats } from "./heartbeat";

/** The saved agent token, in the agent's state dir (its --root). */
export const TOKEN_FILE = "control-plane-token.json";

export type Credential = { kind: "token"; token: string } | { kind: "join"; joinToken: string };

export interface SavedToken {
  apiUrl: string;
  token: string;
  /** sha256 of the join token it was traded for: a different one in the env means join again. */
  joinedWith: string;
  joinedAt: string;
}

/** The control plane refused the join (the token is unknown, used, expired or not ours): final. */
export class JoinRefusedError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

const fingerprint = (joinToken: string) => createHash("sha256").update(joinToken).digest("hex");

/**
 * The credential heartbeats need from the env, or null when heartbeats are off (no API URL and
 * no token of either kind). A partial configuration is an error naming what is missing.
 */
export function credentialFromEnv(env: NodeJS.ProcessEnv): Credential | null {
  if (!env.FLOTILLA_API_URL && !env.FLOTILLA_API_TOKEN && !env.FLOTILLA_JOIN_TOKEN) return null;
  const missing = [
    !env.FLOTILLA_API_URL && "FLOTILLA_API_URL",
    !env.FLOTILLA_API_TOKEN && !env.FLOTILLA_JOIN_TOKEN && "FLOTILLA_JOIN_TOKEN (or FLOTILLA_API_TOKEN)",
    !env.FLOTILLA_ENGINE_URL && "FLOTILLA_ENGINE_URL",
  ].filter((m): m is string => !!m);
  if (missing.length) {
    throw new InvalidError(
      `heartbeats need FLOTILLA_API_URL, FLOTILLA_JOIN_TOKEN or FLOTILLA_API_TOKEN, and FLOTILLA_ENGINE_URL; missing ${missing.join(", ")}`,
      {
        field: missing[0].split(" ")[0],
      },
    );
  }
  return env.FLOTILLA_API_TOKEN ? { kind: "token", token: env.FLOTILLA_API_TOKEN } : { kind: "join", joinToken: env.FLOTILLA_JOIN_TOKEN! };
}

export function readSavedToken(stateDir: string): SavedToken | undefined {
  try {
    const saved = JSON.parse(readFileSync(joinPath(stateDir, TOKEN_FILE), "utf8")) as Partial<SavedToken>;
    return typeof saved.token === "string" && typeof saved.joinedWith === "string" ? (saved as SavedToken) : undefined;
  } catch {
    return undefined;
  }
}

/** Atomically, readable by root only: the token lets anyone report as this node. */
export function saveToken(stateDir: string, saved: SavedToken): void {
  mkdirSync(stateDir, { recursive: true, mode: 0o700 });
  const file = joinPath(stateDir, TOKEN_FILE);
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, JSON.stringify(saved, null, 2) + "\n", { mode: 0o600 });
  chmodSync(tmp, 0o600);
  renameSync(tmp, file);
}

export interface JoinOptions {
  apiUrl: string;
  joinToken: string;
  hostname: string;
  log: (message: string) => void;
  signal?: AbortSignal;
  /** First retry delay; doubles up to maxBackoffMs. Default 1s. */
  initialBackoffMs?: number;
  /** Default 60s. */
  maxBackoffMs?: number;
  /** Per request. Default 10s. */
  requestTimeoutMs?: number;
}

/**
 * Trades the join token for the agent's API token. Network failures and 5xx are retried with
 * backoff (the control plane may not be up yet); a 4xx is final: JoinRefusedError with the
 * control plane's message.
 */
export async function joinControlPlane(o: JoinOptions): Promise<string> {
  // Attempts go round the API replicas when FLOTILLA_API_URL names several.
  const urls = apiUrls(o.apiUrl).map((u) => `${u}/api/v1/nodes/join`);
  const maxBackoff = o.maxBackoffMs ?? 60_000;
  let delay = o.initialBackoffMs ?? 1_000;
  for (let attempt = 1; ; attempt++) {
    o.signal?.throwIfAborted();
    let problem: string;
    const url = urls[(attempt - 1) % urls.length];
    try {
      const res = await fetch(url, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ joinToken: o.joinToken, hostname: o.hostname }),
        signal: o.signal
          ? AbortSignal.any([o.signal, AbortSignal.timeout(o.requestTimeoutMs ?? 10_000)])
          : AbortSignal.timeout(o.requestTimeoutMs ?? 10_000),
      });
      const text = await res.text().catch(() => "");
      let body: { token?: unknown; message?: unknown } = {};
      try {
        body = JSON.parse(text) as typeof body;
      } catch {
        // not JSON: reported below as it is
      }
      if (res.ok && typeof body.token === "string") return body.token;
      const message = typeof body.message === "string" ? body.message : text.slice(0, 200) || res.statusText;
      if (res.status >= 400 && res.status < 500 && res.status !== 408 && res.status !== 429)
        throw new JoinRefusedError(res.status, message);
      problem = `HTTP ${res.status}: ${message}`;
    } catch (e) {
      if (e instanceof JoinRefusedError) throw e;
      o.signal?.throwIfAborted();
      problem = (e as { cause?: { code?: string } }).cause?.code ?? (e as Error).message;
    }
    if (attempt === 1 || attempt % 10 === 0) o.log(`joining the control plane at ${url} failed (${attempt}x): ${problem}; retrying`);
    await sleep(delay, o.signal);
    delay = Math.min(maxBackoff, delay * 2);
  }
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(t);
      reject(signal!.reason);
    };
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/**
 * Heartbeat failures caused by the token itself get a hint: retrying will not fix them, a new
 * token will. (The heartbeat loop logs "heartbeat failed (Nx): HTTP 401: ...".)
 */
function withTokenHints(logFn: (m: string) => void, source: string): (m: string) => void {
  return (m) => {
    if (/HTTP 401\b/.test(m))
      logFn(
        `${m} — the control plane no longer accepts the ${source} (revoked, or the machine was removed or re-provisioned); re-provision the machine (ctl machine provision NAME) to give the agent a new join token`,
      );
    else if (/HTTP 403\b/.test(m)) logFn(`${m} — the ${source} may not report as this host; check FLOTILLA_MACHINE_NAME`);
    else logFn(m);
  };
}

/**
 * Starts heartbeats with the right token: FLOTILLA_API_TOKEN as given; else the saved token when
 * it came from the env's join token; else joins first (heartbeats start once it succeeds). Start-up
 * stays synchronous: the returned handle works before the join finishes.
 */
export function startJoinedHeartbeats(
  credential: Credential,
  stateDir: string | undefined,
  options: Omit<HeartbeatOptions, "token">,
): Heartbeats {
  const logFn = options.log ?? (() => {});
  if (credential.kind === "token")
    return startHeartbeats({ ...options, token: credential.token, log: withTokenHints(logFn, "API token in FLOTILLA_API_TOKEN") });
  const saved = stateDir ? readSavedToken(stateDir) : undefined;
  if (saved && saved.joinedWith === fingerprint(credential.joinToken)) {
    return startHeartbeats({
      ...options,
      token: saved.token,
      log: withTokenHints(logFn, `token saved in ${joinPath(stateDir!, TOKEN_FILE)}`),
    });
  }

  const controller = new AbortController();
  let inner: Heartbeats | undefined;
  let stopped = false;
  const hostname = options.hostname ?? osHostname();
  const joined = joinControlPlane({
    apiUrl: options.apiUrl,
    joinToken: credential.joinToken,
    hostname,
    log: logFn,
    signal: controller.signal,
  })
    .then((token) => {
      logFn(`joined the control plane at ${options.apiUrl} as ${hostname}`);
      if (stateDir) {
        try {
          saveToken(stateDir, {
            apiUrl: options.apiUrl,
            token,
            joinedWith: fingerprint(credential.joinToken),
            joinedAt: new Date().toISOString(),
          });
        } catch (e) {
          logFn(
            `could not save the agent token in ${stateDir} (${(e as Error).message}); after a restart this agent cannot report until it is re-provisioned`,
          );
        }
      }
      if (!stopped) inner = startHeartbeats({ ...options, token, log: withTokenHints(logFn, "agent token from the join") });
    })
    .catch((e: unknown) => {
      if (controller.signal.aborted) return;
      if (e instanceof JoinRefusedError) {
        logFn(
          `the control plane refused to join (HTTP ${e.status}): ${e.message}. Heartbeats stay off; re-provision the machine (ctl machine provision NAME) for a new join token`,
        );
      } else {
        logFn(`joining the control plane failed: ${(e as Error).message}`);
      }
    });

  const notJoined: BeatResult = { ok: false, error: "not joined to the control plane" };
  return {
    get nodeId() {
      return inner?.nodeId;
    },
    get intervalMs() {
      return inner?.intervalMs ?? options.intervalMs ?? 5000;
    },
    get maxBackoffMs() {
      return inner?.maxBackoffMs ?? options.maxBackoffMs ?? 60_000;
    },
    beatNow: async () => {
      await joined;
      return inner ? inner.beatNow() : notJoined;
    },
    // Not joined yet: no token to ask with (the create that wanted it is refused as before).
    fetchNetworks: async () => inner?.fetchNetworks(),
    async stop() {
      stopped = true;
      controller.abort(new Error("heartbeats stopped"));
      await joined;
      await inner?.stop();
    },
  };
}
