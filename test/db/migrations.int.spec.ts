import { afterEach, describe, expect, it } from "vitest";
import { execFileSync } from "node:child_process";
import pg from "pg";
import { createTestDatabase, type TestDatabase } from "../support/database";
import { migrationRunner } from "../support/migrations";
import { repoRoot } from "../support/stack";

const dbs: TestDatabase[] = [];
afterEach(async () => {
  await Promise.all(dbs.splice(0).map((d) => d.drop()));
});

async function tables(url: string): Promise<string[]> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    const { rows } = await c.query(`SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1`);
    return rows.map((r) => r.tablename);
  } finally {
    await c.end();
  }
}

const runCli = (args: string[], url: string) =>
  execFileSync("node", ["prisma/migrate.mjs", ...args], {
    cwd: repoRoot,
    env: { ...process.env, DATABASE_URL: url },
    encoding: "utf8",
    stdio: "pipe",
  });

describe("npm run db:migrate", () => {
  it("migrates an empty database to the schema with no drift", async () => {
    const db = await createTestDatabase({ empty: true });
    dbs.push(db);
    expect(await tables(db.url)).toEqual([]);
    const runner = await migrationRunner();
    const applied = await runner.deploy(db.url, { log: () => {} });
    expect(applied.length).toBeGreaterThan(0);
    expect(await tables(db.url)).toEqual(
      expect.arrayContaining(["ApiToken", "Event", "Machine", "Node", "Service", "Task", "_prisma_migrations"]),
    );
    // drift() introspects the live database through Prisma 6 and diffs it against schema.prisma.
    const out = runCli(["drift"], db.url);
    expect(out).toMatch(/no drift/);
  });

  it("is idempotent on an already migrated database", async () => {
    const db = await createTestDatabase();
    dbs.push(db);
    const runner = await migrationRunner();
    expect(await runner.deploy(db.url, { log: () => {} })).toEqual([]);
    expect(runCli(["status"], db.url)).not.toMatch(/pending/);
  });

  it("detects drift when the database differs from the schema", async () => {
    const db = await createTestDatabase();
    dbs.push(db);
    const c = new pg.Client({ connectionString: db.url });
    await c.connect();
    await c.query(`ALTER TABLE "Node" ADD COLUMN stray integer`);
    await c.end();
    let status = 0;
    let out = "";
    try {
      runCli(["drift"], db.url);
    } catch (e) {
      status = (e as { status: number }).status;
      out = String((e as { stdout: string }).stdout);
    }
    expect(status).toBe(2);
    expect(out).toMatch(/stray/);
  });

  it("refuses a migration edited after it was applied, changing nothing", async () => {
    const db = await createTestDatabase();
    dbs.push(db);
    const c = new pg.Client({ connectionString: db.url });
    await c.connect();
    await c.query(`UPDATE "_prisma_migrations" SET checksum = 'edited'`);
    await c.end();
    const runner = await migrationRunner();
    await expect(runner.deploy(db.url, { log: () => {} })).rejects.toThrow(/was edited after it was applied/);
  });

  it("applies concurrently started runs once", async () => {
    const db = await createTestDatabase({ empty: true });
    dbs.push(db);
    const runner = await migrationRunner();
    const results = await Promise.all([1, 2, 3].map(() => runner.deploy(db.url, { log: () => {} })));
    expect(results.flat().length).toBe(results.find((r) => r.length > 0)!.length);
  });
});
