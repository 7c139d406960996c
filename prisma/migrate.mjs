#!/usr/bin/env node
// Flotilla's offline migration tool (see prisma/README.md for why it exists).
//   deploy          apply pending migrations from prisma/migrations (idempotent, locked)
//   status          list applied and pending migrations; exit 1 when any is pending
//   new NAME        write prisma/migrations/<ts>_NAME/migration.sql from the schema diff
//   drift           exit 0 when the database matches prisma/schema.prisma, 2 with a summary if not
// DATABASE_URL names the database. `deploy` records in the standard `_prisma_migrations` table.
import { createHash } from "node:crypto";
import { readFileSync, readdirSync, writeFileSync, mkdirSync, existsSync, mkdtempSync, rmSync } from "node:fs";
import { execFileSync } from "node:child_process";
import { join, dirname } from "node:path";
import { tmpdir } from "node:os";
import { fileURLToPath } from "node:url";
import pg from "pg";

const prismaDir = dirname(fileURLToPath(import.meta.url));
const migrationsDir = join(prismaDir, "migrations");
// Any constant works; it only has to be the same for every runner of this project.
const LOCK_KEY = 72_707_369;

const fail = (msg, code = 1) => {
  console.error(`db: ${msg}`);
  process.exit(code);
};

function databaseUrl() {
  const url = process.env.DATABASE_URL;
  if (!url) fail("DATABASE_URL is not set (e.g. postgresql://user@127.0.0.1:55432/flotilla)");
  return url;
}

export function listMigrations(dir = migrationsDir) {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { withFileTypes: true })
    .filter((d) => d.isDirectory() && existsSync(join(dir, d.name, "migration.sql")))
    .map((d) => {
      const sql = readFileSync(join(dir, d.name, "migration.sql"), "utf8");
      return { name: d.name, sql, checksum: createHash("sha256").update(sql).digest("hex") };
    })
    .sort((a, b) => a.name.localeCompare(b.name));
}

const CREATE_TABLE = `CREATE TABLE IF NOT EXISTS "_prisma_migrations" (
  "id" VARCHAR(36) PRIMARY KEY NOT NULL,
  "checksum" VARCHAR(64) NOT NULL,
  "finished_at" TIMESTAMPTZ,
  "migration_name" VARCHAR(255) NOT NULL,
  "logs" TEXT,
  "rolled_back_at" TIMESTAMPTZ,
  "started_at" TIMESTAMPTZ NOT NULL DEFAULT now(),
  "applied_steps_count" INTEGER NOT NULL DEFAULT 0
)`;

async function appliedMigrations(client) {
  await client.query(CREATE_TABLE);
  const { rows } = await client.query(
    `SELECT migration_name, checksum, finished_at FROM "_prisma_migrations" WHERE rolled_back_at IS NULL ORDER BY started_at`,
  );
  return rows;
}

/** Applies pending migrations, each in its own transaction, under an advisory lock. */
export async function deploy(url, { log = console.error } = {}) {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    // Two starting API replicas must not apply the same migration twice.
    await client.query("SELECT pg_advisory_lock($1)", [LOCK_KEY]);
    const applied = new Map((await appliedMigrations(client)).map((r) => [r.migration_name, r]));
    const pending = [];
    for (const m of listMigrations()) {
      const row = applied.get(m.name);
      if (!row) {
        pending.push(m);
        continue;
      }
      if (!row.finished_at)
        throw new Error(
          `migration ${m.name} started but did not finish; inspect the database, then delete its row from _prisma_migrations`,
        );
      if (row.checksum !== m.checksum)
        throw new Error(`migration ${m.name} was edited after it was applied; create a new migration instead (npm run db:new -- NAME)`);
    }
    for (const m of pending) {
      await client.query("BEGIN");
      try {
        const id = crypto.randomUUID();
        await client.query(`INSERT INTO "_prisma_migrations" (id, checksum, migration_name) VALUES ($1, $2, $3)`, [id, m.checksum, m.name]);
        await client.query(m.sql);
        await client.query(`UPDATE "_prisma_migrations" SET finished_at = now(), applied_steps_count = 1 WHERE id = $1`, [id]);
        await client.query("COMMIT");
        log(`db: applied ${m.name}`);
      } catch (e) {
        await client.query("ROLLBACK");
        throw new Error(`migration ${m.name} failed: ${e.message}`);
      }
    }
    if (pending.length === 0) log("db: up to date");
    return pending.map((m) => m.name);
  } finally {
    await client.end();
  }
}

async function status(url) {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const applied = new Set((await appliedMigrations(client)).filter((r) => r.finished_at).map((r) => r.migration_name));
    let pending = 0;
    for (const m of listMigrations()) {
      const done = applied.has(m.name);
      if (!done) pending++;
      console.log(`${done ? "applied" : "pending"}  ${m.name}`);
    }
    return pending;
  } finally {
    await client.end();
  }
}

// --- Prisma 6's wasm schema engine, for diffs only -------------------------------------------
function prisma6(args, opts = {}) {
  const cli = join(prismaDir, "..", "node_modules", "prisma6", "build", "index.js");
  const env = {
    ...process.env,
    PRISMA_SCHEMA_ENGINE_BINARY: "/bin/false",
    PRISMA_QUERY_ENGINE_LIBRARY: "/bin/false",
    PRISMA_HIDE_UPDATE_MESSAGE: "1",
  };
  return execFileSync(process.execPath, [cli, ...args, "--config", join(prismaDir, "tooling", "prisma6.config.ts")], {
    env,
    encoding: "utf8",
    stdio: ["ignore", "pipe", "pipe"],
    ...opts,
  });
}

/** Prisma 6 wants a datasource url and no Prisma 7 generator; derive that copy of the schema. */
function writePrisma6Schema() {
  const src = readFileSync(join(prismaDir, "schema.prisma"), "utf8");
  const out = src
    .replace(/generator\s+\w+\s*\{[^}]*\}\s*/g, "")
    .replace(/(datasource\s+\w+\s*\{[^}]*?provider\s*=\s*"[^"]+")/, '$1\n  url      = env("DATABASE_URL")');
  mkdirSync(join(prismaDir, ".migrate"), { recursive: true });
  const file = join(prismaDir, ".migrate", "schema.prisma");
  writeFileSync(file, "// GENERATED from prisma/schema.prisma by prisma/migrate.mjs - do not edit\n" + out);
  return file;
}

function diffRun(args) {
  try {
    return { code: 0, out: prisma6(["migrate", "diff", ...args, "--exit-code"]) };
  } catch (e) {
    if (e.status === 2) return { code: 2, out: e.stdout };
    throw new Error(`prisma migrate diff failed: ${(e.stderr || e.message).trim()}`);
  }
}

function newMigration(name) {
  if (!/^[a-z0-9_]+$/.test(name ?? "")) fail("usage: npm run db:new -- NAME (lower-case letters, digits, _)", 2);
  databaseUrl(); // the diff replays existing migrations into a temporary shadow database
  const schema = writePrisma6Schema();
  const from = listMigrations().length ? ["--from-migrations", migrationsDir] : ["--from-empty"];
  const { code, out } = diffRun([...from, "--to-schema-datamodel", schema, "--script"]);
  if (code === 0) return console.error("db: schema and migrations agree; nothing to write");
  const stamp = new Date().toISOString().replace(/\D/g, "").slice(0, 14);
  const dir = join(migrationsDir, `${stamp}_${name}`);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, "migration.sql"), out);
  writeFileSync(join(migrationsDir, "migration_lock.toml"), 'provider = "postgresql"\n');
  console.error(`db: wrote ${dir}/migration.sql`);
}

/** Introspects the live database and diffs it against the schema: what `migrate` would miss. */
export function drift() {
  databaseUrl();
  const schema = writePrisma6Schema();
  const work = mkdtempSync(join(tmpdir(), "flotilla-drift-"));
  try {
    // db pull introspects through the adapter; --print leaves the schema file untouched.
    // Prisma prints a warning about the url before the schema on stdout; keep the schema only.
    const printed = prisma6(["db", "pull", "--print", "--schema", schema]);
    const pulled = printed.slice(Math.max(0, printed.search(/^datasource\s/m)));
    const pulledFile = join(work, "live.prisma");
    writeFileSync(pulledFile, pulled);
    return diffRun(["--from-schema-datamodel", pulledFile, "--to-schema-datamodel", schema]);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

const [cmd, arg] = process.argv.slice(2);
if (import.meta.url === `file://${process.argv[1]}`) {
  try {
    switch (cmd) {
      case "deploy":
        await deploy(databaseUrl());
        break;
      case "status":
        process.exitCode = (await status(databaseUrl())) ? 1 : 0;
        break;
      case "new":
        newMigration(arg);
        break;
      case "drift": {
        const { code, out } = drift();
        console.log(code === 0 ? "db: no drift: the database matches prisma/schema.prisma" : `db: drift found:\n${out}`);
        process.exitCode = code;
        break;
      }
      default:
        fail("usage: migrate.mjs deploy|status|new NAME|drift", 2);
    }
  } catch (e) {
    fail(e.message);
  }
}
