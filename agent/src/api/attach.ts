/**
 * POST /containers/{id}/attach as the docker CLI uses it for `docker run` in the foreground: an
 * HTTP upgrade ("hijack") after which the connection carries the container's output as
 * multiplexed frames and is closed when the container exits. The output comes from the shim's
 * log, followed from where it stood at attach time, so nothing written after the attach is lost
 * even though the CLI attaches before it starts the container.
 */
import type { IncomingMessage } from "node:http";
import type { Duplex } from "node:stream";
import { NotSupportedError } from "@flotilla/core";
import type { ContainerService } from "../containers/container-service";
import { followLog, frame, logSize, parseRecords, readLog, type LogRecord } from "../containers/logs";
import { errorStatus, HttpError, queryBool } from "./http-util";
import { splitVersion } from "./router";

const REASONS: Record<number, string> = { 400: "Bad Request", 404: "Not Found", 409: "Conflict", 500: "Internal Server Error", 501: "Not Implemented" };

/** An error response written by hand: after an upgrade request there is no ServerResponse. */
function rawError(socket: Duplex, err: unknown): void {
  const { status, message } = errorStatus(err);
  const body = JSON.stringify({ message }) + "\n";
  socket.end(`HTTP/1.1 ${status} ${REASONS[status] ?? "Error"}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
}

/** The server's `upgrade` listener: attach requests are served, anything else refused. */
export function upgradeHandler(containers: ContainerService) {
  return (req: IncomingMessage, socket: Duplex, _head: Buffer): void => {
    // The CLI half-closes its side at once when it has no stdin to send; our side must stay
    // open for the output. Plain sockets of an http server allow that already; TLS sockets
    // would answer the close_notify by ending too.
    (socket as Duplex & { allowHalfOpen: boolean }).allowHalfOpen = true;
    socket.on("end", () => {});
    socket.on("error", () => socket.destroy());
    void (async () => {
      try {
        const url = new URL(req.url ?? "/", "http://agent");
        const { path } = splitVersion(url.pathname);
        const m = /^\/containers\/([^/]+)\/attach\/?$/.exec(path);
        if (req.method !== "POST" || !m) {
          if (/^\/exec\//.test(path)) throw new HttpError(501, "exec is not supported by this agent");
          throw new HttpError(404, "page not found");
        }
        await attach(containers, decodeURIComponent(m[1]!), url.searchParams, socket);
      } catch (err) {
        if (!socket.destroyed) rawError(socket, err);
      }
    })();
  };
}

async function attach(containers: ContainerService, ref: string, q: URLSearchParams, socket: Duplex): Promise<void> {
  const c = containers.get(ref);
  const stdout = queryBool(q, "stdout");
  const stderr = queryBool(q, "stderr");
  if (queryBool(q, "stdin")) throw new NotSupportedError("attaching stdin is not supported by this agent", { field: "stdin" });
  const path = containers.store.paths(c.id).log;
  const running = c.state.status === "running";
  // Registered before we answer: the CLI starts the container as soon as it has our 101.
  const done = running ? containers.untilStopped(c.id) : containers.nextExit(c.id);
  let offset = await logSize(path);
  socket.write("HTTP/1.1 101 UPGRADED\r\nContent-Type: application/vnd.docker.multiplexed-stream\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n");
  const send = (records: LogRecord[]) => {
    for (const r of records) if ((r.stream === "stdout" && stdout) || (r.stream === "stderr" && stderr)) socket.write(frame(r.stream, r.log));
  };
  if (queryBool(q, "logs")) {
    const past = await readLog(path);
    send(parseRecords(past.lines));
    offset = past.offset;
  }
  if (queryBool(q, "stream")) {
    const abort = new AbortController();
    socket.on("close", () => abort.abort());
    await followLog(path, offset, send, { done, signal: abort.signal });
  }
  socket.end();
}
