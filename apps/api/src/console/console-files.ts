// The built web console (apps/console/dist) as files to answer with. Plain fs reads rather than
// @fastify/static: the console needs an SPA fallback for every non-/api path, which Fastify can
// only express as a not-found handler, and that one belongs to Nest (it renders the JSON 404s of
// /api). Kept free of Nest and Fastify so it can be tested on its own.
import { readFile, stat } from "node:fs/promises";
import { extname, join, normalize, resolve, sep } from "node:path";

/** Where `vite build` writes the console: apps/console/dist, from src/console or dist/console alike. */
export const DEFAULT_CONSOLE_DIR = resolve(__dirname, "..", "..", "..", "console", "dist");

const TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".mjs": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".json": "application/json",
  ".map": "application/json",
  ".webmanifest": "application/manifest+json",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".jpg": "image/jpeg",
  ".ico": "image/x-icon",
  ".woff2": "font/woff2",
  ".txt": "text/plain; charset=utf-8",
};

/**
 * The console talks to this same origin, and to the other API replicas (FLOTILLA_PUBLIC_URLS)
 * when this one stops answering, and nowhere else; inline style attributes are React's `style`
 * props. No framing (clickjacking) and no Referer leaving the page.
 */
export function consoleCsp(replicaOrigins: readonly string[] = []): string {
  const connect = ["'self'", ...replicaOrigins].join(" ");
  return `default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src ${connect}; frame-ancestors 'none'; base-uri 'none'; form-action 'self'`;
}

export interface ConsoleAnswer {
  status: number;
  headers: Record<string, string>;
  body: Buffer | string;
}

const NOT_BUILT =
  "The Flotilla web console is not built on this control plane.\n" +
  "Build it with `npm run build` (or `npx vite build --config apps/console/vite.config.ts`) and reload.\n" +
  "The REST API is at /api/v1, its documentation at /api/docs, and ctl does everything the console does.\n";

export class ConsoleFiles {
  constructor(
    readonly root: string = DEFAULT_CONSOLE_DIR,
    /**
     * The other replicas' origins, which the page may call (its failover): a list, or a function
     * read at each answer (replicas installed on machines come and go while the process runs).
     */
    private readonly replicaOrigins: readonly string[] | (() => readonly string[]) = [],
  ) {}

  private get csp(): string {
    return consoleCsp(typeof this.replicaOrigins === "function" ? this.replicaOrigins() : this.replicaOrigins);
  }

  /**
   * The answer for `GET urlPath` (the path without its query): a file of the build, index.html
   * for app routes (/services/web), 404 for a missing file, 503 when there is no build at all.
   */
  async answer(urlPath: string, ifNoneMatch?: string): Promise<ConsoleAnswer> {
    const index = await this.file("index.html");
    if (!index) return text(503, NOT_BUILT);
    let rel: string;
    try {
      rel = decodeURIComponent(urlPath);
    } catch {
      return text(400, "malformed path\n");
    }
    if (rel.includes("\0")) return text(400, "malformed path\n");
    // normalize() folds ../ against a leading slash, so nothing can climb above the root; the
    // prefix check below is the second lock (a symlink in the build, say).
    rel = normalize(`/${rel}`).replace(/^[/\\]+/, "");
    const found = rel ? await this.file(rel) : index;
    if (found) return this.serve(found, rel || "index.html", ifNoneMatch);
    // A path that names a file (it has an extension) is a missing file, not an app route: a stale
    // hashed asset must fail as such rather than come back as HTML.
    if (extname(rel)) return text(404, `not found: /${rel}\n`);
    return this.serve(index, "index.html", ifNoneMatch);
  }

  private async file(rel: string): Promise<{ path: string; size: number; mtimeMs: number } | null> {
    const root = resolve(this.root);
    const path = resolve(join(root, rel));
    if (path !== root && !path.startsWith(root + sep)) return null;
    try {
      const s = await stat(path);
      return s.isFile() ? { path, size: s.size, mtimeMs: s.mtimeMs } : null;
    } catch {
      return null;
    }
  }

  private async serve(f: { path: string; size: number; mtimeMs: number }, rel: string, ifNoneMatch?: string): Promise<ConsoleAnswer> {
    const etag = `W/"${f.size.toString(16)}-${Math.floor(f.mtimeMs).toString(16)}"`;
    const headers: Record<string, string> = {
      "content-type": TYPES[extname(rel).toLowerCase()] ?? "application/octet-stream",
      etag,
      // Vite puts a content hash in every name under assets/, so those never change; anything
      // else (index.html above all) must be revalidated so a new build shows up at once.
      "cache-control": rel.startsWith("assets/") ? "public, max-age=31536000, immutable" : "no-cache",
      "x-content-type-options": "nosniff",
      "referrer-policy": "no-referrer",
    };
    if (rel === "index.html") {
      headers["content-security-policy"] = this.csp;
      headers["x-frame-options"] = "DENY";
    }
    if (ifNoneMatch && ifNoneMatch.split(",").some((t) => t.trim() === etag)) return { status: 304, headers, body: "" };
    return { status: 200, headers, body: await readFile(f.path) };
  }
}

function text(status: number, body: string): ConsoleAnswer {
  return {
    status,
    headers: { "content-type": "text/plain; charset=utf-8", "cache-control": "no-store", "x-content-type-options": "nosniff" },
    body,
  };
}
