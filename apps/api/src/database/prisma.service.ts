import { Inject, Injectable, OnModuleDestroy } from "@nestjs/common";
import { PrismaPg } from "@prisma/adapter-pg";
import { PrismaClient } from "../generated/prisma/client";
import { APP_CONFIG, type AppConfig } from "../config/config";

/** The Prisma client over node-postgres (Prisma 7's wasm query compiler: no engine binary). */
@Injectable()
export class PrismaService extends PrismaClient implements OnModuleDestroy {
  constructor(@Inject(APP_CONFIG) config: AppConfig) {
    super({ adapter: new PrismaPg({ connectionString: config.databaseUrl, max: config.dbPoolSize, connectionTimeoutMillis: 5_000 }) });
  }

  async onModuleDestroy(): Promise<void> {
    await this.$disconnect();
  }

  /** True when a trivial query answers; the health check must not throw. */
  async ping(): Promise<{ ok: boolean; error?: string }> {
    try {
      await this.$queryRawUnsafe("SELECT 1");
      return { ok: true };
    } catch (e) {
      // Prisma messages start with blank lines and a call-site excerpt; the last line is the cause.
      const lines = (e as Error).message.split("\n").map((l) => l.trim()).filter(Boolean);
      return { ok: false, error: lines.at(-1) ?? "query failed" };
    }
  }
}
