// FLOTILLA_AGENT_LISTEN: extra addresses where machines' agents reach the API, relayed byte for
// byte to the API's own listener. The API itself stays on loopback (FLOTILLA_HOST); a netns
// machine, whose only interface is on the machines' bridge, reaches it at the bridge's gateway.
//
// The gateway address exists only while the bridge does: the netns driver creates the bridge with
// the first machine and deletes it with the last. Binding is therefore retried until the address
// appears (logged once per reason, not once per try). A bound listener outlives the address: Linux
// keeps the socket and it answers again when the address comes back with a new bridge.
import { Logger } from "@nestjs/common";
import { connect, createServer, type Server, type Socket } from "node:net";
import { createServer as createTlsServer } from "node:tls";
import { LISTEN_BACKLOG } from "../common/listen-backlog";

export interface ListenAddress {
  host: string;
  port: number;
}

export interface AgentListeners {
  /** Resolves when every address is bound (tests; the API never waits for it). */
  bound(): Promise<void>;
  close(): Promise<void>;
}

const RETRY_MS = 2_000;

const show = (a: ListenAddress) => (a.host.includes(":") ? `[${a.host}]:${a.port}` : `${a.host}:${a.port}`);

/** Where the relay connects: the API's address, or loopback when it listens on every address. */
export function relayTarget(host: string, port: number): ListenAddress {
  if (host === "0.0.0.0") return { host: "127.0.0.1", port };
  if (host === "::" || host === "[::]") return { host: "::1", port };
  return { host, port };
}

export function startAgentListeners(
  addresses: readonly ListenAddress[],
  target: ListenAddress,
  options: {
    retryMs?: number;
    logger?: Pick<Logger, "log" | "warn">;
    /**
     * A server certificate from the Flotilla CA: the listener then speaks TLS, so join tokens,
     * agent tokens and the ingress table never cross the machines' network in clear.
     */
    tls?: { key: string; cert: string };
  } = {},
): AgentListeners {
  const logger = options.logger ?? new Logger("agent-listener");
  const retryMs = options.retryMs ?? RETRY_MS;
  const sockets = new Set<Socket>();
  let closed = false;

  const relay = (down: Socket) => {
    const up = connect(target.port, target.host);
    sockets.add(down).add(up);
    down.setNoDelay(true);
    up.setNoDelay(true);
    down.pipe(up).pipe(down);
    const end = () => {
      down.destroy();
      up.destroy();
      sockets.delete(down);
      sockets.delete(up);
    };
    down.once("error", end).once("close", end);
    up.once("error", end).once("close", end);
  };

  const listeners = addresses.map((address) => {
    const server: Server = options.tls
      ? createTlsServer({ key: options.tls.key, cert: options.tls.cert, minVersion: "TLSv1.2" }, relay)
      : createServer(relay);
    let timer: NodeJS.Timeout | undefined;
    let lastProblem = "";
    const done = new Promise<void>((resolve) => {
      const attempt = () => {
        if (closed) return resolve();
        // Not listen(port, host, callback): a failed listen leaves its callback registered and
        // every retry would add one more.
        const onListening = () => {
          server.off("error", onError);
          server.on("error", (e) => logger.warn(`agents' listener ${show(address)}: ${e.message}`));
          logger.log(`agents reach the API at ${show(address)}${options.tls ? " over TLS" : ""} (relayed to ${show(target)})`);
          resolve();
        };
        const onError = (e: NodeJS.ErrnoException) => {
          server.off("listening", onListening);
          if (closed) return resolve();
          const problem = e.code ?? e.message;
          if (problem !== lastProblem) {
            const why =
              e.code === "EADDRNOTAVAIL"
                ? "the address does not exist on this host yet (the machines' bridge comes with the first netns machine)"
                : e.message;
            logger.warn(`agents' listener ${show(address)}: ${why}; retrying every ${retryMs / 1000}s`);
            lastProblem = problem;
          }
          timer = setTimeout(attempt, retryMs);
          timer.unref();
        };
        server.once("error", onError);
        server.once("listening", onListening);
        server.listen(address.port, address.host, LISTEN_BACKLOG);
      };
      attempt();
    });
    return { server, done, stop: () => timer && clearTimeout(timer) };
  });

  return {
    bound: async () => {
      await Promise.all(listeners.map((l) => l.done));
    },
    close: async () => {
      closed = true;
      for (const l of listeners) l.stop();
      for (const s of sockets) s.destroy();
      await Promise.all(
        listeners.map((l) => (l.server.listening ? new Promise<void>((r) => l.server.close(() => r())) : Promise.resolve())),
      );
    },
  };
}
