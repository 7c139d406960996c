// The console's REST client. The token only ever travels in the Authorization header: never in a
// URL (URLs end up in history, logs and Referer headers), never in a log line.
//
// Several API replicas: the console is served by one of them and talks to it (same origin) until
// it stops answering; then to the next replica of the list `GET /api/v1/control-plane` gave
// (FLOTILLA_PUBLIC_URLS; each replica lets the others' origins call it). A read that got no
// answer is sent to the next replica; a write is not (the browser cannot tell a refused
// connection from one cut after sending, and the replica may have carried it out): its error says
// so, and later requests go to the next replica.
import type { ApiErrorBody, ControlPlaneView } from "@flotilla/api-types";

/** An API failure carrying the API's own words, shown to the user as is. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly body: ApiErrorBody,
  ) {
    super(body.message);
  }

  /** The request field the API blamed (400 `invalid` answers), if any. */
  get field(): string | undefined {
    const f = this.body.details?.field;
    return typeof f === "string" ? f : undefined;
  }
}

export const messageOf = (e: unknown): string => (e instanceof Error ? e.message : String(e));

const READS = new Set(["GET", "HEAD"]);

export class Api {
  /** Base URLs, "" being the replica that served the console; the list grows by discoverReplicas. */
  private bases: string[] = [""];
  private current = 0;

  constructor(
    private readonly token: string,
    /** Called on a 401: the token was revoked while the console was open. */
    private readonly onUnauthorized: (message: string) => void = () => undefined,
  ) {}

  /** The replica requests go to now: "" for the one that served the console, else its base URL. */
  get replica(): string {
    return this.bases[this.current % this.bases.length];
  }

  /**
   * Learns the other replicas (`GET /api/v1/control-plane`), to fail over to when the current one
   * stops answering. Without the list (one replica, or an older API) the console stays with its own.
   */
  async discoverReplicas(signal?: AbortSignal): Promise<void> {
    const view = await this.get<ControlPlaneView>("/api/v1/control-plane", signal);
    const own = window.location.origin;
    const others = view.apiUrls.filter((u) => u.replace(/\/+$/, "") !== own);
    // The current replica keeps its place, so a list learnt after a failover changes nothing now.
    const current = this.replica;
    this.bases = ["", ...others];
    this.current = Math.max(0, this.bases.indexOf(current));
  }

  get<T>(path: string, signal?: AbortSignal): Promise<T> {
    return this.request<T>("GET", path, undefined, signal);
  }

  async request<T>(method: string, path: string, body?: unknown, signal?: AbortSignal): Promise<T> {
    const res = await this.raw(method, path, { body, signal });
    if (res.status === 204) return undefined as T;
    return (await res.json()) as T;
  }

  /** Any request; answers with a non-2xx status become an ApiError with the API's message. */
  async raw(method: string, path: string, opts: { body?: unknown; signal?: AbortSignal; accept?: string } = {}): Promise<Response> {
    const headers: Record<string, string> = { accept: opts.accept ?? "application/json", authorization: `Bearer ${this.token}` };
    if (opts.body !== undefined) headers["content-type"] = "application/json";
    let res: Response | undefined;
    const unreachable: string[] = [];
    for (let tried = 0; !res && tried < this.bases.length; tried++) {
      const base = this.replica;
      try {
        res = await fetch(base + path, {
          method,
          headers,
          body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
          signal: opts.signal,
          // GETs revalidate: the browser keeps the last answer and sends its ETag (If-None-Match),
          // and an unchanged listing comes back as a bodiless 304 it serves from that copy.
          cache: method === "GET" ? "no-cache" : "no-store",
        });
      } catch (e) {
        if (opts.signal?.aborted) throw e;
        const where = base || window.location.origin;
        unreachable.push(`${where}: ${messageOf(e)}`);
        this.current = (this.current + 1) % this.bases.length;
        if (!READS.has(method) && this.bases.length > 1) {
          throw new ApiError(0, {
            error: "unreachable",
            message: `the Flotilla API at ${where} did not answer ${method} ${path}; it may have carried it out before it went away, so check before repeating it (the console now uses ${this.replica || window.location.origin})`,
          });
        }
      }
    }
    if (!res) throw new ApiError(0, { error: "unreachable", message: `cannot reach the Flotilla API: ${unreachable.join("; ")}` });
    if (res.ok) return res;
    const error = await errorOf(res, method, path);
    if (res.status === 401) this.onUnauthorized(error.message);
    throw error;
  }
}

async function errorOf(res: Response, method: string, path: string): Promise<ApiError> {
  const text = await res.text().catch(() => "");
  try {
    const body = JSON.parse(text) as Partial<ApiErrorBody>;
    if (typeof body.message === "string")
      return new ApiError(res.status, { error: body.error ?? "error", message: body.message, details: body.details ?? {} });
  } catch {
    // Not the API's error shape (a proxy in between, say): fall back to the status line.
  }
  return new ApiError(res.status, {
    error: "error",
    message: `${method} ${path}: HTTP ${res.status}${res.statusText ? ` ${res.statusText}` : ""}`,
  });
}

/** Checks a token against the API without keeping it: the API's refusal comes back as an ApiError. */
export async function verifyToken(token: string): Promise<void> {
  await new Api(token).get("/api/v1/nodes");
}

/** Path segment encoding for names and ids. */
export const seg = encodeURIComponent;
