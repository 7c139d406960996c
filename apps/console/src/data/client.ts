// The console's REST client. The token only ever travels in the Authorization header: never in a
// URL (URLs end up in history, logs and Referer headers), never in a log line.
import type { ApiErrorBody } from "@flotilla/api-types";

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

export class Api {
  constructor(
    private readonly token: string,
    /** Called on a 401: the token was revoked while the console was open. */
    private readonly onUnauthorized: (message: string) => void = () => undefined,
  ) {}

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
    let res: Response;
    try {
      res = await fetch(path, {
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
      throw new ApiError(0, { error: "unreachable", message: `cannot reach the Flotilla API: ${messageOf(e)}` });
    }
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
