import { existsSync, readFileSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import type { ApiErrorBody } from "@flotilla/api-types";

/** Where ctl finds the API: env first, then the config the API wrote on its first start. */
export interface CtlConfig {
  /** The first API URL (what `ctl system info` shows). */
  url: string;
  /** Every API replica, in order: FLOTILLA_URL or the config's url may list several, comma-separated. */
  urls?: string[];
  token?: string;
  source: string;
}

export function configDir(env = process.env): string {
  return env.FLOTILLA_CONFIG_DIR || join(env.XDG_CONFIG_HOME || join(env.HOME || homedir(), ".config"), "flotilla");
}

export function loadCtlConfig(env = process.env): CtlConfig {
  const file = join(configDir(env), "config.json");
  let fromFile: Partial<CtlConfig> = {};
  if (existsSync(file)) {
    try {
      fromFile = JSON.parse(readFileSync(file, "utf8")) as Partial<CtlConfig>;
    } catch (e) {
      throw new CtlError(`cannot read ${file}: ${(e as Error).message}`);
    }
  }
  const url = env.FLOTILLA_URL || fromFile.url || "http://127.0.0.1:8080";
  const token = env.FLOTILLA_TOKEN || fromFile.token;
  const urls = url
    .split(",")
    .map((u) => u.trim().replace(/\/+$/, ""))
    .filter(Boolean);
  return { url: urls[0] ?? url, urls, token, source: env.FLOTILLA_TOKEN ? "FLOTILLA_TOKEN" : existsSync(file) ? file : "defaults" };
}

/** An error whose message is for the user as is; exit code 1. */
export class CtlError extends Error {}

export type { ApiErrorBody };

/**
 * Failures that happen before a request leaves this host (refused, no route, no such name,
 * connect timeout): nothing was delivered, so any request may go to the next replica. Anything
 * else (a reset or close after sending) may have reached a replica that acted on it.
 */
const NOT_DELIVERED = new Set([
  "ECONNREFUSED",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "ENOTFOUND",
  "EAI_AGAIN",
  "EADDRNOTAVAIL",
  "UND_ERR_CONNECT_TIMEOUT",
]);
/** Reads repeat harmlessly: one cut off mid-way is sent again. */
const IDEMPOTENT = new Set(["GET", "HEAD"]);

/**
 * A thin REST client: the API's error message becomes the CLI's error message. With several API
 * replicas, a request that reached none is sent to the next, and so is a read whose connection
 * broke; a write whose connection broke after sending is not resent (the replica may have carried
 * it out), and one that got an answer, even an error, never is.
 */
export class ApiClient {
  private current = 0;
  constructor(private readonly config: CtlConfig) {}

  /** The replica requests go to now (the next one once it stops answering). */
  get currentUrl(): string {
    const urls = this.urls();
    return urls[this.current % urls.length];
  }

  private urls(): string[] {
    return this.config.urls?.length ? this.config.urls : [this.config.url];
  }

  /** `accept` lists error statuses whose body is an answer, not a failure (health's 503). */
  async request<T>(method: string, path: string, body?: unknown, opts: { acceptStatus?: number[] } = {}): Promise<T> {
    const res = await this.raw(method, path, body, "application/json", opts.acceptStatus);
    if (res.status === 204) return undefined as T;
    return (await res.json()) as T;
  }

  async raw(method: string, path: string, body?: unknown, accept = "application/json", acceptStatus: number[] = []): Promise<Response> {
    const headers: Record<string, string> = { accept };
    if (this.config.token) headers.authorization = `Bearer ${this.config.token}`;
    if (body !== undefined) headers["content-type"] = "application/json";
    const urls = this.urls();
    let res: Response | undefined;
    const unreachable: string[] = [];
    for (let tried = 0; !res && tried < urls.length; tried++) {
      const url = urls[this.current % urls.length];
      try {
        res = await fetch(url + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
      } catch (e) {
        // This replica is down (or went down during the request): the next one may serve.
        const cause = (e as { cause?: { code?: string; message?: string } }).cause;
        const code = cause?.code ?? cause?.message ?? (e as Error).message;
        unreachable.push(`${url}: ${code}`);
        this.current++;
        if (!IDEMPOTENT.has(method) && !NOT_DELIVERED.has(cause?.code ?? "")) {
          throw new CtlError(
            `the Flotilla API at ${url} broke the connection before answering ${method} ${path} (${code}): it may have carried the request out; check before repeating it (the next command goes to ${this.currentUrl})`,
          );
        }
      }
    }
    if (!res) {
      throw new CtlError(
        `cannot reach the Flotilla API at ${unreachable.join("; ")} (is it running? \`npm start\` starts the local stack)`,
      );
    }
    if (res.ok || acceptStatus.includes(res.status)) return res;
    let parsed: ApiErrorBody | undefined;
    try {
      parsed = (await res.json()) as ApiErrorBody;
    } catch {
      // not our error shape; fall through
    }
    if (res.status === 401 && !this.config.token)
      throw new CtlError(`no API token: set FLOTILLA_TOKEN or log in with \`ctl login --token TOKEN\``);
    throw new CtlError(parsed?.message ?? `${method} ${path}: HTTP ${res.status}`);
  }
}
