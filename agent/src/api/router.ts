/**
 * A tiny router for the Engine API: strips the `/vX.Y` version prefix (checking it against what
 * we support, as dockerd does), matches `/containers/:id/start` style patterns, and turns thrown
 * errors into Docker's error responses.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import { HttpError, sendError } from "./http-util";

/** The API version we implement; older clients are served, newer ones must negotiate down. */
export const API_VERSION = "1.41";
export const MIN_API_VERSION = "1.12";

export interface RequestContext {
  req: IncomingMessage;
  res: ServerResponse;
  params: Record<string, string>;
  query: URLSearchParams;
  /** The client's version from the path prefix, or ours when unprefixed. */
  apiVersion: string;
}

export type Handler = (ctx: RequestContext) => Promise<void> | void;

interface Route {
  method: string;
  regex: RegExp;
  names: string[];
  handler: Handler;
}

/** Compares dotted versions numerically: -1, 0, 1. */
export function compareVersions(a: string, b: string): number {
  const pa = a.split(".").map(Number);
  const pb = b.split(".").map(Number);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (d) return Math.sign(d);
  }
  return 0;
}

/** Splits `/v1.41/containers/json` into version and path; checks the version's range. */
export function splitVersion(pathname: string): { version: string; path: string } {
  const m = /^\/v(\d+\.\d+)(\/.*)?$/.exec(pathname);
  if (!m) return { version: API_VERSION, path: pathname };
  const version = m[1]!;
  if (compareVersions(version, API_VERSION) > 0) {
    throw new HttpError(400, `client version ${version} is too new. Maximum supported API version is ${API_VERSION}`);
  }
  if (compareVersions(version, MIN_API_VERSION) < 0) {
    throw new HttpError(
      400,
      `client version ${version} is too old. Minimum supported API version is ${MIN_API_VERSION}, please upgrade your client to a newer version`,
    );
  }
  return { version, path: m[2] ?? "/" };
}

export class Router {
  private readonly routes: Route[] = [];

  /** Registers a handler; `:name` segments match one path segment, `*name` the rest (image names have slashes). */
  add(method: string, pattern: string, handler: Handler): this {
    const names: string[] = [];
    const source = pattern
      .split("/")
      .map((seg) => {
        if (seg.startsWith(":")) {
          names.push(seg.slice(1));
          return "([^/]+)";
        }
        if (seg.startsWith("*")) {
          names.push(seg.slice(1));
          return "(.+?)";
        }
        return seg.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
      })
      .join("/");
    this.routes.push({ method, regex: new RegExp(`^${source}/?$`), names, handler });
    return this;
  }

  /** Finds the route for a request; null when nothing matches (the caller answers 404). */
  match(method: string, path: string): { handler: Handler; params: Record<string, string> } | null {
    for (const route of this.routes) {
      if (route.method !== method && !(method === "HEAD" && route.method === "GET")) continue;
      const m = route.regex.exec(path);
      if (!m) continue;
      const params: Record<string, string> = {};
      route.names.forEach((n, i) => (params[n] = decodeURIComponent(m[i + 1]!)));
      return { handler: route.handler, params };
    }
    return null;
  }

  /** The `request` listener for http(s) servers. */
  handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    try {
      const url = new URL(req.url ?? "/", "http://agent");
      const { version, path } = splitVersion(url.pathname);
      const found = this.match(req.method ?? "GET", path);
      if (!found) throw new HttpError(404, "page not found");
      await found.handler({ req, res, params: found.params, query: url.searchParams, apiVersion: version });
    } catch (err) {
      sendError(res, err);
    }
  };
}
