// Config for Prisma 6.19's CLI, used only to *generate* migration SQL from schema diffs and to
// check drift (prisma/migrate.mjs new|drift). Prisma 7 cannot: its migrate always runs a native
// schema engine it would download. Prisma 6 can run its wasm schema engine through adapter-pg,
// after the three workarounds below.
process.env.PRISMA_SCHEMA_ENGINE_BINARY ??= "/bin/false";
process.env.PRISMA_QUERY_ENGINE_LIBRARY ??= "/bin/false";
import { randomUUID } from "node:crypto";
import { defineConfig } from "prisma6/config";
import { PrismaPg } from "@prisma/adapter-pg";
import pg from "pg";

// Workaround 1 (prisma/orm#27403): adapter-pg rejects pg_catalog `name` (19) and `char` (18)
// columns, and arrays of them, that the schema engine reads while introspecting: call them text.
const AS_TEXT: Record<number, number> = { 18: 25, 19: 25, 1002: 1009, 1003: 1009 };
function retypeFields<T>(result: T): T {
  for (const r of (Array.isArray(result) ? result : [result]) as { fields?: { dataTypeID: number }[] }[]) {
    for (const f of r?.fields ?? []) f.dataTypeID = AS_TEXT[f.dataTypeID] ?? f.dataTypeID;
  }
  return result;
}
class CatalogAsTextClient extends pg.Client {
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  override query(...args: any[]): any {
    const cbAt = args.findIndex((a) => typeof a === "function");
    if (cbAt >= 0) {
      const cb = args[cbAt];
      args[cbAt] = (err: unknown, res: unknown) => cb(err, err ? res : retypeFields(res));
      return (super.query as (...a: unknown[]) => unknown)(...args);
    }
    const r = (super.query as (...a: unknown[]) => unknown)(...args) as Promise<unknown> | undefined;
    return r && typeof r.then === "function" ? r.then(retypeFields) : r;
  }
}

// Discrete fields, never connectionString: pg lets connectionString override `database`.
function poolConfig(url: string, database?: string): pg.PoolConfig {
  const u = new URL(url);
  return {
    host: u.hostname,
    port: Number(u.port || 5432),
    user: decodeURIComponent(u.username),
    password: decodeURIComponent(u.password) || undefined,
    database: database ?? u.pathname.slice(1),
    Client: CatalogAsTextClient as unknown as typeof pg.Client,
  };
}

// Workaround 3: adapter-pg's executeScript() splits on ";", breaking dollar-quoted bodies.
// Send the script whole over the simple-query protocol, as the native engine does.
type ScriptRunner = { executeScript(s: string): Promise<void>; underlyingDriver(): { query(s: string): Promise<unknown> } };
function runScriptsWhole<T extends ScriptRunner>(adapter: T): T {
  adapter.executeScript = async (script: string) => {
    await adapter.underlyingDriver().query(script);
  };
  return adapter;
}

class MigrationAdapterFactory extends PrismaPg {
  constructor(private readonly url: string) {
    super(new pg.Pool(poolConfig(url)), { disposeExternalPool: true });
  }
  override async connect() {
    return runScriptsWhole(await super.connect());
  }
  // Workaround 2: adapter-pg drops the shadow database before closing its pool, and with a
  // connectionString its "shadow" pool points at the main database. Manage it ourselves.
  override async connectToShadowDb() {
    const name = `prisma_shadow_${randomUUID().replaceAll("-", "")}`;
    const admin = new pg.Pool(poolConfig(this.url));
    await admin.query(`CREATE DATABASE "${name}"`);
    const inner = runScriptsWhole(await new PrismaPg(new pg.Pool(poolConfig(this.url, name)), { disposeExternalPool: true }).connect());
    const dispose = inner.dispose.bind(inner);
    inner.dispose = async () => {
      await dispose();
      await admin.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
      await admin.end();
    };
    return inner;
  }
}

export default defineConfig({
  experimental: { adapter: true },
  engine: "js",
  schema: "../.migrate/schema.prisma",
  migrations: { path: "../migrations" },
  adapter: async () => new MigrationAdapterFactory(process.env.DATABASE_URL!),
});
