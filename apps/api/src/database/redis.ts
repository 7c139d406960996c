import { Inject, Injectable, OnModuleDestroy } from "@nestjs/common";
import IORedis, { type Redis, type RedisOptions } from "ioredis";
import { APP_CONFIG, type AppConfig } from "../config/config";
import type { RedisTarget } from "../config/connection-urls";

/**
 * ioredis asks the Sentinels for the master whenever it (re)connects: after the master dies its
 * connections drop and come back to the new one; after a graceful failover Sentinel kills the
 * demoted master's clients, and a write that still meets it (READONLY) reconnects and is resent
 * (reconnectOnError: 2). Not `failoverDetector`: when +switch-master arrives while a connection
 * is already reconnecting, it aborts that connect and ioredis ends the connection for good
 * ("Connection is closed" from then on; seen here with the master killed).
 */
export function sentinelOptions(t: Extract<RedisTarget, { kind: "sentinel" }>): RedisOptions {
  return {
    sentinels: t.sentinels,
    name: t.name,
    username: t.username,
    password: t.password,
    sentinelPassword: t.sentinelPassword,
    db: t.db,
    reconnectOnError: (e) => (/^READONLY/.test(e.message) ? 2 : false),
  };
}

/**
 * Redis connections. BullMQ needs `maxRetriesPerRequest: null` on its blocking connections;
 * subscribers need a connection of their own. Everything opened here is closed on shutdown.
 */
@Injectable()
export class RedisConnections implements OnModuleDestroy {
  private readonly opened: Redis[] = [];
  readonly client: Redis;

  constructor(@Inject(APP_CONFIG) private readonly config: AppConfig) {
    // Requests on this shared connection must fail fast when Redis is down (health, publish);
    // only BullMQ's blocking worker connections need to wait forever.
    this.client = this.open({ maxRetriesPerRequest: 1, connectTimeout: 2_000 });
  }

  open(extra: RedisOptions = {}): Redis {
    const options: RedisOptions = { maxRetriesPerRequest: null, lazyConnect: false, ...extra };
    const conn =
      this.config.redis.kind === "direct"
        ? new IORedis(this.config.redis.url, options)
        : new IORedis({ ...sentinelOptions(this.config.redis), ...options });
    // Errors surface through health and failing commands; an unhandled 'error' event would crash.
    conn.on("error", () => undefined);
    this.opened.push(conn);
    return conn;
  }

  async ping(): Promise<{ ok: boolean; error?: string }> {
    try {
      const pong = await Promise.race([
        this.client.ping(),
        new Promise<never>((_, reject) => setTimeout(() => reject(new Error("no answer within 2s")), 2_000)),
      ]);
      return { ok: pong === "PONG" };
    } catch (e) {
      return { ok: false, error: (e as Error).message };
    }
  }

  async onModuleDestroy(): Promise<void> {
    await Promise.all(this.opened.map((c) => c.quit().catch(() => c.disconnect())));
  }
}
