/**
 * One HTTP(S) request with node:http, no redirects followed: the registry client decides about
 * redirects itself (credentials must not travel to another host). Bodies stream.
 */
import http from "node:http";
import https from "node:https";
import { rootCertificates } from "node:tls";
import type { IncomingHttpHeaders, IncomingMessage } from "node:http";

export interface HttpRequestOptions {
  method?: "GET" | "HEAD" | "POST" | "PUT" | "PATCH";
  headers?: Record<string, string>;
  /** A request body: bytes, or a stream made fresh for each attempt. */
  body?: Buffer | (() => NodeJS.ReadableStream);
  signal?: AbortSignal;
  /** Extra CA certificates trusted for https (added to Node's bundled roots). */
  ca?: string | Buffer | ReadonlyArray<string | Buffer>;
  /** Socket idle timeout; a stalled registry fails instead of hanging a pull forever. */
  timeoutMs?: number;
}

export interface HttpResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: IncomingMessage;
  url: URL;
}

/**
 * Sends the request and resolves once the response headers are in.
 *
 * The signal is not given to node:http: a request's abort listener outlives the request there,
 * and an abort after its response was read destroyed the keep-alive socket the agent pool had
 * taken back, which then had no error listener and crashed the process (a pull cancelled while
 * another of its requests had just finished). Here the listener goes when the exchange is over,
 * and an abort destroys only what is still in flight: the request, or the body being read.
 */
export function httpRequest(url: URL, opts: HttpRequestOptions = {}): Promise<HttpResponse> {
  return new Promise((resolve, reject) => {
    const { signal } = opts;
    if (signal?.aborted) return reject(abortError(signal));
    const secure = url.protocol === "https:";
    let ca: Array<string | Buffer> | undefined;
    if (secure && opts.ca !== undefined) {
      // Passing `ca` replaces Node's roots; keep them so public registries still verify.
      ca = [...rootCertificates, ...(Array.isArray(opts.ca) ? opts.ca : [opts.ca as string | Buffer])];
    }
    const req = (secure ? https : http).request(url, {
      method: opts.method ?? "GET",
      headers: opts.headers,
      ...(ca ? { ca } : {}),
    });
    let body: IncomingMessage | undefined;
    const onAbort = () => {
      const err = abortError(signal!);
      if (body) body.destroy(err);
      else req.destroy(err);
    };
    const release = () => signal?.removeEventListener("abort", onAbort);
    signal?.addEventListener("abort", onAbort, { once: true });
    const timeoutMs = opts.timeoutMs ?? 60_000;
    req.setTimeout(timeoutMs, () => req.destroy(Object.assign(new Error(`no data for ${timeoutMs} ms`), { code: "ETIMEDOUT" })));
    // `on`, not `once`: a request destroyed after its response can error again with nobody else
    // listening, which would crash the process.
    req.on("error", (e) => {
      release();
      reject(e);
    });
    req.once("response", (res) => {
      body = res;
      // Likewise for the body, when the abort comes after its last read; a reader still gets
      // any error from the stream itself.
      res.on("error", () => {});
      res.once("close", release);
      resolve({ status: res.statusCode ?? 0, headers: res.headers, body: res, url });
    });
    if (typeof opts.body === "function") opts.body().pipe(req);
    else req.end(opts.body);
  });
}

/** The error an aborted pull or push fails with (what node:http used to raise for a signal). */
function abortError(signal: AbortSignal): Error {
  return Object.assign(new Error("The operation was aborted", { cause: signal.reason }), { name: "AbortError", code: "ABORT_ERR" });
}

/** Reads a whole (small) body, refusing more than `limit` bytes. */
export async function readBody(res: HttpResponse, limit: number): Promise<Buffer> {
  const declared = Number(res.headers["content-length"] ?? NaN);
  if (declared > limit) {
    res.body.destroy();
    throw new Error(`response of ${declared} bytes exceeds the ${limit}-byte limit`);
  }
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of res.body as AsyncIterable<Buffer>) {
    total += chunk.length;
    if (total > limit) {
      res.body.destroy();
      throw new Error(`response exceeds the ${limit}-byte limit`);
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

/** Drains and discards a body so the keep-alive socket can be reused. */
export function discard(res: HttpResponse): void {
  res.body.resume();
}
