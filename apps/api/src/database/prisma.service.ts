import { Inject, Injectable, Logger, OnModuleDestroy } from "@nestjs/common";
import { PrismaPg } from "@prisma/adapter-pg";
import pg from "pg";
import { PrismaClient } from "../generated/prisma/client";
import { APP_CONFIG, type AppConfig } from "../config/config";
import { primarySessions } from "./pg-failover";
import { Sql } from "./sql";

/**
 * The Prisma client over node-postgres (Prisma 7's wasm query compiler: no engine binary), and
 * `sql`, plain SQL on the same pool for the hot paths (see sql.ts).
 */
@Injectable()
export class PrismaService extends PrismaClient implements OnModuleDestroy {
  readonly sql: Sql;
  private readonly pool: pg.Pool;
  private readonly sessions: ReturnType<typeof primarySessions>;

  constructor(@Inject(APP_CONFIG) config: AppConfig) {
    // Several hosts in DATABASE_URL: connections go to the primary and follow it after a failover.
    const sessions = primarySessions(config.database, 5_000);
    const pool = new pg.Pool({ ...sessions.config, max: config.dbPoolSize, Client: sessions.Client });
    // An idle connection that breaks (Postgres restarted) must not crash the process; the next
    // query opens a new one.
    pool.on("error", (e) => new Logger("database").warn(`idle connection failed: ${e.message}`));
    super({ adapter: new PrismaPg(pool) });
    this.pool = pool;
    this.sessions = sessions;
    this.sql = new Sql(pool);
  }

  /** A session outside the pool, not yet connected, on the primary (a LISTEN holds its own). */
  newSession(applicationName: string): pg.Client {
    return new this.sessions.Client({ ...this.sessions.config, application_name: applicationName });
  }

  async onModuleDestroy(): Promise<void> {
    await this.$disconnect();
    await this.pool.end();
  }

  /** True when a trivial query answers; the health check must not throw. */
  async ping(): Promise<{ ok: boolean; error?: string }> {
    try {
      await this.$queryRawUnsafe("SELECT 1");
      return { ok: true };
    } catch (e) {
      // Prisma messages start with blank lines and a call-site excerpt; the last line is the cause.
      const lines = (e as Error).message
        .split("\n")
        .map((l) => l.trim())
        .filter(Boolean);
      return { ok: false, error: lines.at(-1) ?? "query failed" };
    }
  }
}
