/**
 * `POST /build`, the classic builder's endpoint the docker CLI uses without buildx: the body is
 * the context tar, the answer a stream of JSON lines ({"stream"}, {"status"} for base image
 * pulls, {"aux": {"ID"}}, {"errorDetail"}). A build that fails before printing anything answers
 * with an HTTP error instead, so the CLI shows "Error response from daemon: …".
 */
import { InvalidError } from "@flotilla/core";
import { parseBuildOptions } from "../build/build-options";
import { BuildError, isUserError, type Builder } from "../build/builder";
import type { EventBus } from "../events/event-bus";
import type { Credentials } from "../images";
import { errorStatus } from "./http-util";
import { HttpError } from "./http-util";
import type { Router } from "./router";

export interface BuildRouteDeps {
  builder: Builder;
  events: EventBus;
}

/** X-Registry-Config: base64 JSON `{"registry": {"username", "password"}, …}`. */
export function registryConfig(header: string | string[] | undefined): (domain: string) => Credentials | undefined {
  const value = Array.isArray(header) ? header[0] : header;
  if (!value) return () => undefined;
  let parsed: Record<string, { username?: string; password?: string }>;
  try {
    parsed = JSON.parse(Buffer.from(value.replace(/-/g, "+").replace(/_/g, "/"), "base64").toString("utf8")) as typeof parsed;
  } catch {
    throw new InvalidError("invalid X-Registry-Config header", { field: "X-Registry-Config" });
  }
  return (domain) => {
    const keys =
      domain === "docker.io"
        ? ["https://index.docker.io/v1/", "docker.io", "index.docker.io"]
        : [domain, `http://${domain}`, `https://${domain}`];
    for (const k of keys) {
      const c = parsed?.[k];
      if (c?.username) return { username: c.username, password: c.password ?? "" };
    }
    return undefined;
  };
}

export function registerBuildRoutes(router: Router, deps: BuildRouteDeps): void {
  router.add("POST", "/build", async ({ req, res, query }) => {
    const options = parseBuildOptions(query);
    const credentials = registryConfig(req.headers["x-registry-config"]);
    const abort = new AbortController();
    res.on("close", () => !res.writableFinished && abort.abort());
    const write = (obj: unknown) => {
      if (!res.headersSent) res.writeHead(200, { "Content-Type": "application/json" });
      res.write(JSON.stringify(obj) + "\r\n");
    };
    const quiet = options.quiet;
    const out = {
      stream: (text: string) => !quiet && write({ stream: text }),
      status: (m: object) => !quiet && write(m),
      aux: (value: unknown) => write({ aux: value }),
    };
    try {
      const id = await deps.builder.build(req as AsyncIterable<Buffer>, { options, credentials, signal: abort.signal }, out);
      if (quiet) write({ stream: `${id}\n` });
      for (const t of options.tags) deps.events.emit("image", "tag", id, { name: t });
      res.end();
    } catch (err) {
      // Drain what the client still sends, so it reads our answer instead of a broken pipe.
      req.resume();
      const { message } = isUserError(err) ? { message: (err as Error).message } : errorStatus(err);
      if (!res.headersSent) {
        if (err instanceof BuildError) throw new HttpError(400, message);
        throw err;
      }
      const code = err instanceof BuildError ? err.code : undefined;
      res.end(JSON.stringify({ errorDetail: { message, ...(code !== undefined ? { code } : {}) }, error: message }) + "\r\n");
    }
  });
}
