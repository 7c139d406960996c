/**
 * One proxied connection: connect to a backend (failing over in round-robin order), then splice
 * the two sockets. Every socket made here is handed to `track` at once, so the proxy can destroy
 * it on close() whatever stage it is in.
 */
import net from "node:net";
import type { IngressBackend } from "./ingress-types";

/** Registers a socket with its owner until it closes. */
export type Track = (socket: net.Socket) => void;

const reason = (e: Error) => (e as NodeJS.ErrnoException).code ?? e.message;

/**
 * Connects to one backend. Resolves the connected socket, or the reason it could not be reached:
 * refused, unreachable, nothing within timeoutMs, or destroyed meanwhile (the proxy closing).
 * Never rejects, so callers simply try the next backend.
 */
export function connectBackend(backend: IngressBackend, timeoutMs: number, track: Track): Promise<net.Socket | Error> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: backend.host, port: backend.port, allowHalfOpen: true });
    track(socket);
    let settled = false;
    const settle = (result: net.Socket | Error) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.off("error", onError);
      socket.off("close", onClose);
      if (result instanceof Error) socket.destroy();
      resolve(result);
    };
    const onError = (e: Error) => settle(new Error(reason(e)));
    const onClose = () => settle(new Error("closed before connecting"));
    // A backend host that is down drops SYNs rather than refusing them; without a limit the
    // client would wait for the kernel's connect timeout (minutes) instead of trying the next.
    const timer = setTimeout(() => settle(new Error(`no connection within ${timeoutMs} ms`)), timeoutMs);
    socket.once("error", onError);
    socket.once("close", onClose);
    socket.once("connect", () => settle(socket));
  });
}

/** The backend that took the connection, or every failure in the order tried. */
export type ConnectOutcome = { socket: net.Socket; backend: IngressBackend } | { failures: string[] };

/**
 * Tries each backend once, starting at `start` and wrapping around. Stops early (with the
 * failures so far) when `abandoned()` turns true: the client is gone or the proxy closing.
 */
export async function connectAny(
  backends: readonly IngressBackend[],
  start: number,
  timeoutMs: number,
  track: Track,
  abandoned: () => boolean,
): Promise<ConnectOutcome> {
  const failures: string[] = [];
  for (let i = 0; i < backends.length && !abandoned(); i++) {
    const backend = backends[(start + i) % backends.length]!;
    const result = await connectBackend(backend, timeoutMs, track);
    if (!(result instanceof Error)) return { socket: result, backend };
    failures.push(`${backend.host}:${backend.port}: ${result.message}`);
  }
  return { failures };
}

/**
 * Pipes the sockets into each other. Both must be allowHalfOpen: a FIN from one side only ends
 * writing to the other (pipe's end()), so a client that shuts down its sending half still reads
 * the whole reply; each socket closes once both its directions are done. Any error tears down
 * both, since one half of a proxied connection is useless without the other.
 */
export function splice(client: net.Socket, upstream: net.Socket): void {
  const destroyBoth = () => {
    client.destroy();
    upstream.destroy();
  };
  for (const s of [client, upstream]) {
    s.setNoDelay(true);
    // Reclaims connections whose peer vanished without a FIN (host down, cable cut).
    s.setKeepAlive(true, 60_000);
    s.on("error", destroyBoth);
  }
  client.pipe(upstream);
  upstream.pipe(client);
}
