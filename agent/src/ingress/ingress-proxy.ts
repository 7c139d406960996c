/**
 * The agent's half of the ingress routing mesh: a userland TCP proxy listening on every published
 * ingress port of the cluster and forwarding each connection to one task of the service, on this
 * node or another. See README.md for why a proxy and not DNAT.
 *
 * Each apply() replaces the whole table. Ports that stay keep their listening socket (only the
 * backends are swapped, so no connection attempt is refused during an update); ports that go stop
 * accepting but their open connections run to their end; new ports are bound. Applies are
 * serialized, so two tables never interleave.
 */
import net from "node:net";
import { connectAny, splice } from "./ingress-forward";
import { checkIngressTable } from "./ingress-table";
import type { IngressApplyResult, IngressDataPlane, IngressPort, IngressPortError, IngressTable } from "./ingress-types";

export interface IngressProxyOptions {
  /** Address to listen on. Default 0.0.0.0 (tests use 127.0.0.1). */
  host?: string;
  /** How long one backend may take to accept a connection before the next is tried. Default 2000. */
  connectTimeoutMs?: number;
  log?: (message: string) => void;
}

/** One listening port: the entry is swapped in place by apply(); `next` is the round-robin cursor. */
interface Route {
  entry: IngressPort;
  next: number;
  server: net.Server;
  lastFailureLog: number;
}

// A dead backend pool under load would otherwise log one line per connection.
const FAILURE_LOG_INTERVAL_MS = 10_000;

export class IngressProxy implements IngressDataPlane {
  readonly kind = "proxy";
  private readonly host: string;
  private readonly connectTimeoutMs: number;
  private readonly log: (message: string) => void;
  private readonly routes = new Map<number, Route>();
  private readonly sockets = new Set<net.Socket>();
  /** Ports of the current table that could not be bound, with the last error logged for each. */
  private readonly bindErrors = new Map<number, string>();
  private applied: string | undefined;
  private queue: Promise<unknown> = Promise.resolve();
  private closed = false;

  constructor(options: IngressProxyOptions = {}) {
    this.host = options.host ?? "0.0.0.0";
    this.connectTimeoutMs = options.connectTimeoutMs ?? 2000;
    this.log = options.log ?? (() => {});
  }

  /**
   * Version of the last table applied in full; undefined before the first, and while a port of
   * the last table could not be bound. Heartbeats report it, so in the second case the control
   * plane keeps sending the table and every beat retries the failed ports.
   */
  get version(): string | undefined {
    return this.applied;
  }

  /** Ports being listened on, ascending. */
  get ports(): number[] {
    return [...this.routes.keys()].sort((a, b) => a - b);
  }

  /** Open client and backend sockets (including those of ports no longer listed). */
  get connections(): number {
    return this.sockets.size;
  }

  /**
   * Makes `table` the routing table. Resolves with the ports it could not serve (bind failures
   * such as EADDRINUSE or EACCES, invalid entries); those never stop the other ports. Rejects only
   * with InvalidError for something that is not a table at all. After close() it does nothing.
   */
  apply(table: IngressTable): Promise<IngressApplyResult> {
    const run = this.queue.then(() => this.applyNow(table));
    this.queue = run.catch(() => undefined);
    return run;
  }

  /** The proxy does not depend on what this node runs. */
  async refresh(): Promise<void> {}

  /** Stops listening and destroys every connection, including ones still being set up. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    // An apply in flight sees `closed` after its binds and closes what it made.
    await this.queue;
    const servers = [...this.routes.values()].map((r) => r.server);
    this.routes.clear();
    for (const s of this.sockets) s.destroy();
    await Promise.all(servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
  }

  private async applyNow(table: IngressTable): Promise<IngressApplyResult> {
    if (this.closed) return { errors: [] };
    const checked = checkIngressTable(table);
    // A proxy cannot keep the client's address, and that is what traffic=local promises.
    const unserved = checked.ports.filter((p) => p.traffic === "local");
    checked.ports = checked.ports.filter((p) => p.traffic !== "local");
    checked.errors.push(...unserved.map((p) => ({ port: p.port, message: "traffic=local needs the kernel data plane (iptables)" })));
    const errors: IngressPortError[] = [...checked.errors];
    for (const e of checked.errors) this.log(`ingress: port ${e.port} ignored: ${e.message}`);
    const wanted = new Map(checked.ports.map((p) => [p.port, p]));
    for (const [port, route] of this.routes) {
      if (wanted.has(port)) continue;
      // close() only stops accepting: connections already spliced keep running to their end.
      route.server.close();
      this.routes.delete(port);
      this.log(`ingress: port ${port} (${route.entry.serviceName}) no longer published`);
    }
    for (const port of this.bindErrors.keys()) if (!wanted.has(port)) this.bindErrors.delete(port);

    await Promise.all(
      [...wanted.values()].map(async (entry) => {
        const kept = this.routes.get(entry.port);
        if (kept) {
          kept.entry = entry;
          return;
        }
        const made = await this.listen(entry);
        if (made instanceof Error) {
          errors.push({ port: entry.port, message: made.message });
          if (this.bindErrors.get(entry.port) !== made.message)
            this.log(`ingress: port ${entry.port} (${entry.serviceName}) not served: ${made.message}`);
          this.bindErrors.set(entry.port, made.message);
          return;
        }
        if (this.closed) {
          made.server.close();
          return;
        }
        this.routes.set(entry.port, made);
        const retried = this.bindErrors.delete(entry.port) ? " (after failing before)" : "";
        this.log(`ingress: listening on ${this.host}:${entry.port} for ${entry.serviceName}${retried}`);
      }),
    );
    this.applied = this.bindErrors.size === 0 && !this.closed ? checked.version : undefined;
    return { errors: errors.sort((a, b) => a.port - b.port) };
  }

  /** Binds a port; resolves the route, or the bind error (never rejects). */
  private listen(entry: IngressPort): Promise<Route | Error> {
    const route = { entry, next: 0, lastFailureLog: 0 } as Route;
    // pauseOnConnect: the client's bytes wait in the kernel until a backend is connected, so
    // nothing is read that would have to be buffered here.
    route.server = net.createServer({ allowHalfOpen: true, pauseOnConnect: true }, (client) => this.accept(route, client));
    return new Promise((resolve) => {
      const onError = (e: Error) => {
        route.server.close();
        resolve(e);
      };
      route.server.once("error", onError);
      route.server.listen({ port: entry.port, host: this.host }, () => {
        route.server.off("error", onError);
        route.server.on("error", (e) => this.log(`ingress: port ${entry.port}: ${e.message}`));
        resolve(route);
      });
    });
  }

  private track(socket: net.Socket): void {
    this.sockets.add(socket);
    socket.once("close", () => this.sockets.delete(socket));
  }

  private accept(route: Route, client: net.Socket): void {
    this.track(client);
    // Until splice() takes over: a reset while backends are tried must not crash the agent.
    client.on("error", () => client.destroy());
    // A snapshot: an apply() swapping the backends does not disturb this connection's failover.
    const backends = route.entry.backends;
    if (backends.length === 0 || this.closed) {
      client.destroy();
      return;
    }
    const start = route.next % backends.length;
    route.next = (start + 1) % backends.length;
    void connectAny(
      backends,
      start,
      this.connectTimeoutMs,
      (s) => this.track(s),
      () => client.destroyed || this.closed,
    ).then((outcome) => {
      if ("socket" in outcome) {
        if (client.destroyed || this.closed) outcome.socket.destroy();
        else splice(client, outcome.socket);
        return;
      }
      client.destroy();
      const now = Date.now();
      if (outcome.failures.length > 0 && now - route.lastFailureLog >= FAILURE_LOG_INTERVAL_MS) {
        route.lastFailureLog = now;
        this.log(`ingress: port ${route.entry.port} (${route.entry.serviceName}): no backend answered: ${outcome.failures.join("; ")}`);
      }
    });
  }
}
