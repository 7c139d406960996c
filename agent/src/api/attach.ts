/**
 * The hijacked ("Upgrade: tcp") endpoints: POST /containers/{id}/attach and POST /exec/{id}/start.
 *
 * Attach to a container without tty or stdin (`docker run` in the foreground): the connection
 * carries its output as multiplexed frames from the shim's log, followed from where it stood at
 * attach time, and closes when the container exits. A container with a tty or open stdin
 * (`docker run -it`, `docker attach`) is joined to its shim's attach socket instead: live output
 * (raw with a tty), the client's stdin, detach keys; when the attach comes before the start, the
 * shim is asked to hold the output until the agent connects, so the first prompt is not lost.
 */
import type { IncomingMessage } from "node:http";
import type { Duplex } from "node:stream";
import type { ContainerService } from "../containers/container-service";
import { followLog, frame, logSize, parseRecords, readLog, type LogRecord } from "../containers/logs";
import { connectAttach } from "../exec/attach-socket";
import { DEFAULT_DETACH_KEYS, parseDetachKeys } from "../exec/detach-keys";
import type { ExecService } from "../exec/exec-service";
import { pipeInteractive } from "../exec/interactive";
import { isInteractive } from "../containers/shim-args";
import type { ContainerRecord } from "../containers/container-types";
import { execStartHijacked } from "./exec.routes";
import { errorStatus, HttpError, queryBool } from "./http-util";
import { splitVersion } from "./router";

const REASONS: Record<number, string> = {
  400: "Bad Request",
  404: "Not Found",
  409: "Conflict",
  500: "Internal Server Error",
  501: "Not Implemented",
};

/** An error response written by hand: after an upgrade request there is no ServerResponse. */
function rawError(socket: Duplex, err: unknown): void {
  const { status, message } = errorStatus(err);
  const body = JSON.stringify({ message }) + "\n";
  socket.end(
    `HTTP/1.1 ${status} ${REASONS[status] ?? "Error"}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
  );
}

/** The server's `upgrade` listener: attach requests are served, anything else refused. */
export function upgradeHandler(containers: ContainerService, execs: ExecService | null = null) {
  return (req: IncomingMessage, socket: Duplex, head: Buffer): void => {
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
        const x = /^\/exec\/([^/]+)\/start\/?$/.exec(path);
        if (req.method === "POST" && x && execs) {
          await takeUpgradeBody(req, socket, head);
          await execStartHijacked(execs, decodeURIComponent(x[1]!), socket, true);
          return;
        }
        if (req.method !== "POST" || !m) throw new HttpError(404, "page not found");
        await takeUpgradeBody(req, socket, head);
        await attach(containers, decodeURIComponent(m[1]!), url.searchParams, socket);
      } catch (err) {
        if (!socket.destroyed) rawError(socket, err);
      }
    })();
  };
}

/**
 * The body of an upgrade request (exec start's JSON): Node does not parse it, so it is the first
 * Content-Length bytes after the headers — in `head`, then on the socket. Whatever follows is the
 * client's stdin and is put back.
 */
function takeUpgradeBody(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
  let need = Number(req.headers["content-length"] ?? 0) || 0;
  const rest = head.subarray(Math.min(need, head.length));
  need -= Math.min(need, head.length);
  if (need === 0) {
    if (rest.length) socket.unshift(rest);
    return Promise.resolve();
  }
  return new Promise((resolve) => {
    const onData = (b: Buffer) => {
      const take = Math.min(need, b.length);
      need -= take;
      if (need > 0) return;
      socket.off("data", onData);
      socket.pause();
      if (b.length > take) socket.unshift(b.subarray(take));
      resolve();
    };
    socket.on("data", onData);
    socket.once("close", () => resolve());
  });
}

async function attachInteractive(containers: ContainerService, c: ContainerRecord, q: URLSearchParams, socket: Duplex): Promise<void> {
  const withStdin = queryBool(q, "stdin") && c.config.OpenStdin;
  const detachKeys = parseDetachKeys(q.get("detachKeys") || DEFAULT_DETACH_KEYS);
  const runningNow = c.state.status === "running" && !containers.isStarting(c.id);
  // Registered before the 101: the CLI starts the container as soon as it has it.
  const release = runningNow ? () => {} : containers.holdOutputForAttach(c.id);
  const started = runningNow ? Promise.resolve(true) : containers.untilStarted(c.id);
  const gone = new Promise<false>((resolve) => socket.once("close", () => resolve(false)));
  try {
    const type = c.config.Tty ? "application/vnd.docker.raw-stream" : "application/vnd.docker.multiplexed-stream";
    socket.write(`HTTP/1.1 101 UPGRADED\r\nContent-Type: ${type}\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n`);
    if (queryBool(q, "logs")) {
      const past = parseRecords((await readLog(containers.store.paths(c.id).log)).lines);
      for (const r of past) socket.write(c.config.Tty ? r.log : frame(r.stream, r.log));
    }
    if (!queryBool(q, "stream") || !(await Promise.race([started, gone]))) {
      socket.end();
      return;
    }
  } finally {
    release();
  }
  const shim = await connectAttach(containers.store.paths(c.id).stateDir, withStdin).catch(() => null);
  if (!shim) {
    socket.end(); // exited in the meantime
    return;
  }
  const how = await pipeInteractive({ client: socket, shim, stdin: withStdin, detachKeys });
  shim.destroy();
  if (how !== "client-gone") socket.end();
}

async function attach(containers: ContainerService, ref: string, q: URLSearchParams, socket: Duplex): Promise<void> {
  const c = containers.get(ref);
  if (isInteractive(c)) return attachInteractive(containers, c, q, socket);
  const stdout = queryBool(q, "stdout");
  const stderr = queryBool(q, "stderr");
  // No stdin to attach: the container was created without -i (Docker ignores it likewise).
  const path = containers.store.paths(c.id).log;
  const running = c.state.status === "running";
  // Registered before we answer: the CLI starts the container as soon as it has our 101.
  const done = running ? containers.untilStopped(c.id) : containers.nextExit(c.id);
  let offset = await logSize(path);
  socket.write(
    "HTTP/1.1 101 UPGRADED\r\nContent-Type: application/vnd.docker.multiplexed-stream\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n",
  );
  const send = (records: LogRecord[]) => {
    for (const r of records)
      if ((r.stream === "stdout" && stdout) || (r.stream === "stderr" && stderr)) socket.write(frame(r.stream, r.log));
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
