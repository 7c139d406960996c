// A node-postgres pool over several Postgres hosts with libpq's target_session_attrs semantics,
// which node-postgres lacks: each new connection goes to the host last found writable; when that
// one fails, the hosts are probed in order for one that is not in recovery. So after a standby
// is promoted, connections move to it by themselves, and while only standbys answer, nothing
// connects and every query fails with a 503 saying so (a write must not be half-taken).
import pg from "pg";
import type { DatabaseTarget } from "../config/connection-urls";

type Host = { host: string; port: number };

/** No host took a read-write session: SQLSTATE 08001 (client unable to establish connection). */
export class NoPrimaryError extends Error {
  readonly code = "08001";
}

/** Finds and remembers the writable host; probes are shared by concurrent connects. */
export class PrimaryLocator {
  private current?: Host;
  private probing?: Promise<Host>;

  constructor(
    private readonly target: DatabaseTarget,
    private readonly timeoutMs: number,
  ) {}

  /** The host new connections should use. */
  async pick(): Promise<Host> {
    if (this.current) return this.current;
    this.probing ??= this.probe().finally(() => (this.probing = undefined));
    return this.probing;
  }

  /** Forgets `host` as the primary: the next connection probes again. */
  forget(host: Host): void {
    if (this.current && this.current.host === host.host && this.current.port === host.port) this.current = undefined;
  }

  private async probe(): Promise<Host> {
    const seen: string[] = [];
    for (const h of this.target.hosts) {
      const client = new pg.Client({ connectionString: this.target.firstHostUrl, connectionTimeoutMillis: this.timeoutMs });
      dialHost(client, h);
      client.on("error", () => undefined);
      try {
        await client.connect();
        const { rows } = await client.query<{ standby: boolean }>("SELECT pg_is_in_recovery() AS standby");
        if (!rows[0].standby) return (this.current = h);
        seen.push(`${h.host}:${h.port} is a read-only standby`);
      } catch (e) {
        seen.push(`${h.host}:${h.port}: ${(e as Error).message}`);
      } finally {
        await client.end().catch(() => undefined);
      }
    }
    throw new NoPrimaryError(`Postgres has no writable primary: ${seen.join("; ")}`);
  }
}

/**
 * How to open sessions on the primary that follow it after a failover: `new Client(config)`, or
 * a pool with `Client`. With one host and target_session_attrs=any, plain pg.Client.
 */
export function primarySessions(
  target: DatabaseTarget,
  connectionTimeoutMillis: number,
): { Client: typeof pg.Client; config: pg.ClientConfig } {
  // The URL's other parameters (sslmode, options, …) apply to every host.
  const config: pg.ClientConfig = { connectionString: target.firstHostUrl, connectionTimeoutMillis };
  if (target.hosts.length === 1 && target.targetSessionAttrs === "any") return { Client: pg.Client, config };
  const locator = new PrimaryLocator(target, connectionTimeoutMillis);
  const readWrite = target.targetSessionAttrs === "read-write";

  class FailoverClient extends pg.Client {
    override connect(): Promise<pg.Client>;
    override connect(callback: ((err: Error) => void) | ((err: null, c: pg.Client) => void)): void;
    override connect(callback?: ((err: Error) => void) | ((err: null, c: pg.Client) => void)): Promise<pg.Client> | void {
      const done = this.connectToPrimary();
      if (!callback) return done;
      const cb = callback as (err: Error | null, c?: pg.Client) => void;
      done.then(
        (c) => cb(null, c),
        (e: Error) => cb(e),
      );
    }

    private async connectToPrimary(): Promise<pg.Client> {
      const host = readWrite ? await locator.pick() : target.hosts[0];
      dialHost(this, host);
      // A lost connection (the server stopped or was cut off) may mean the primary moved.
      this.on("error", () => locator.forget(host));
      try {
        return await super.connect();
      } catch (e) {
        locator.forget(host);
        throw e;
      }
    }
  }
  return { Client: FailoverClient, config };
}

/** Points a client not yet connected at `host`: node-postgres dials this.host/this.port, and its connectionParameters name the server (TLS). */
function dialHost(client: pg.Client, host: Host): void {
  const c = client as unknown as Host & { connectionParameters: Host };
  c.host = c.connectionParameters.host = host.host;
  c.port = c.connectionParameters.port = host.port;
}
