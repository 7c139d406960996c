/**
 * Small pieces of the Engine API's HTTP conventions: JSON bodies, boolean query flags, Docker's
 * error shape `{"message": …}` and the status each typed error maps to.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import type { TLSSocket } from "node:tls";
import { DomainError, InvalidError } from "@flotilla/core";
import { HttpError, NotModifiedError } from "../engine-errors";

export { HttpError, NotModifiedError } from "../engine-errors";
export { labelMatches } from "../labels";

const STATUS_BY_KIND: Record<string, number> = {
  not_found: 404,
  conflict: 409,
  invalid: 400,
  not_supported: 501,
  unavailable: 503,
};

/** Status code and message of any error thrown by a handler. */
export function errorStatus(err: unknown): { status: number; message: string } {
  if (err instanceof NotModifiedError) return { status: 304, message: "" };
  if (err instanceof HttpError) return { status: err.status, message: err.message };
  if (err instanceof DomainError) return { status: STATUS_BY_KIND[err.kind] ?? 500, message: err.message };
  if (err instanceof Error && err.name === "DigestMismatchError") return { status: 500, message: err.message };
  return { status: 500, message: err instanceof Error ? err.message : String(err) };
}

export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const data = Buffer.from(JSON.stringify(body) + "\n");
  res.writeHead(status, { "Content-Type": "application/json", "Content-Length": data.length });
  res.end(data);
}

export function sendEmpty(res: ServerResponse, status = 204): void {
  res.writeHead(status);
  res.end();
}

/** Writes Docker's error body; after headers went out there is nothing to do but end. */
export function sendError(res: ServerResponse, err: unknown): void {
  const { status, message } = errorStatus(err);
  if (res.headersSent) {
    res.destroy();
    return;
  }
  if (status === 304) return sendEmpty(res, 304);
  sendJson(res, status, { message });
}

const MAX_BODY = 4 * 1024 * 1024;

/** Reads a JSON body; an empty body is `{}` (the CLI sends none for some POSTs). 400 on bad JSON. */
export async function readJson<T = Record<string, unknown>>(req: IncomingMessage): Promise<T> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY) throw new HttpError(413, "request body too large");
    chunks.push(chunk);
  }
  const text = Buffer.concat(chunks).toString("utf8").trim();
  if (!text) return {} as T;
  try {
    const value = JSON.parse(text) as unknown;
    if (value === null || typeof value !== "object" || Array.isArray(value)) throw new Error("expected a JSON object");
    return value as T;
  } catch (err) {
    throw new InvalidError(`invalid JSON: ${(err as Error).message}`);
  }
}

/** Docker's boolean query values: `1`, `true`, `True` are true; absent or `0`/`false` false. */
export function queryBool(q: URLSearchParams, name: string, fallback = false): boolean {
  const v = q.get(name);
  if (v === null || v === "") return fallback;
  return !["0", "false", "False", "FALSE", "no"].includes(v);
}

/** A non-negative integer query value, or undefined when absent. 400 otherwise. */
export function queryInt(q: URLSearchParams, name: string): number | undefined {
  const v = q.get(name);
  if (v === null || v === "") return undefined;
  const n = Number(v);
  if (!Number.isInteger(n)) throw new InvalidError(`invalid value for ${name}: ${v}`, { field: name });
  return n;
}

/**
 * The `filters` query parameter: `{"label":{"k=v":true}}` (current clients) or the legacy
 * `{"label":["k=v"]}`; both become `{label: ["k=v"]}`.
 */
export function parseFilters(q: URLSearchParams): Map<string, string[]> {
  const out = new Map<string, string[]>();
  const raw = q.get("filters");
  if (!raw) return out;
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    throw new InvalidError(`invalid filter: ${raw}`, { field: "filters" });
  }
  if (!parsed || typeof parsed !== "object" || Array.isArray(parsed))
    throw new InvalidError(`invalid filter: ${raw}`, { field: "filters" });
  for (const [key, value] of Object.entries(parsed as Record<string, unknown>)) {
    if (Array.isArray(value)) out.set(key, value.map(String));
    else if (value && typeof value === "object")
      out.set(
        key,
        Object.entries(value)
          .filter(([, on]) => on)
          .map(([k]) => k),
      );
    else throw new InvalidError(`invalid filter ${key}`, { field: "filters" });
  }
  return out;
}

/** Checks every filter key is one we know (Docker: 400 "invalid filter 'x'"). */
export function checkFilterKeys(filters: Map<string, string[]>, allowed: readonly string[]): void {
  for (const key of filters.keys()) if (!allowed.includes(key)) throw new InvalidError(`invalid filter '${key}'`, { field: "filters" });
}

/**
 * Who sent a request, for log lines about what it did: method and path, the client certificate's
 * subject (TLS) or the local socket, and the client's User-Agent.
 */
export function requester(req: IncomingMessage): string {
  const socket = req.socket as Partial<TLSSocket>;
  const cn = socket.getPeerCertificate?.()?.subject?.CN;
  const peer = cn
    ? `client certificate "${cn}" at ${req.socket.remoteAddress}`
    : req.socket.remoteAddress
      ? `${req.socket.remoteAddress}`
      : "the local socket";
  const agent = req.headers["user-agent"];
  return `${req.method} ${(req.url ?? "").split("?")[0]} from ${peer}${agent ? ` (${agent})` : ""}`;
}
