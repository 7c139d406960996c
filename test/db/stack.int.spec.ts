// deploy/local/stack.sh against faults done for real, on its own Postgres and Redis (own state
// dir and ports): `up` right after a Postgres backend crash, while Postgres replays its WAL and
// refuses connections (fsync on, as users run it); Redis's append-only file keeps a write
// across a kill -9, and `up` restarts a Redis whose process is a zombie.
import { execFile, execFileSync, spawn } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { repoRoot } from "../support/stack";

const root = process.getuid?.() === 0;
const PG_BIN = "/usr/lib/postgresql/15/bin";
const freePort = () =>
  new Promise<number>((resolve) => {
    const srv = createServer().listen(0, "127.0.0.1", () => {
      const p = (srv.address() as { port: number }).port;
      srv.close(() => resolve(p));
    });
  });

describe("stack.sh up after faults", () => {
  // Postgres runs as `postgres` when we are root: keep its data where that user can enter.
  const state = mkdtempSync(join(root ? "/var/tmp" : (process.env.TMPDIR ?? "/tmp"), "flotilla-stack-faults-"));
  let env: NodeJS.ProcessEnv;
  let pgPort: number;
  let redisPort: number;
  const stack = (cmd: string) =>
    new Promise<{ code: number; stderr: string }>((resolve) =>
      execFile("bash", [join(repoRoot, "deploy/local/stack.sh"), cmd], { env, encoding: "utf8" }, (err, _out, stderr) =>
        resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stderr }),
      ),
    );
  const asPg = (cmd: string, args: string[]) =>
    root
      ? execFileSync("runuser", ["-u", "postgres", "--", cmd, ...args], { encoding: "utf8" })
      : execFileSync(cmd, args, { encoding: "utf8" });
  // Administration as the stack itself does it: Postgres over its private socket (peer auth),
  // Redis with the password the stack generated.
  const pgSocketDir = join(state, "postgres");
  const sql = (q: string) => asPg(`${PG_BIN}/psql`, ["-h", pgSocketDir, "-p", String(pgPort), "-d", "postgres", "-tAc", q]).trim();
  const redisPassword = () => /^REDIS_PASSWORD=(\w+)$/m.exec(readFileSync(join(state, "secrets.env"), "utf8"))![1];
  const redis = (...args: string[]) =>
    execFileSync("redis-cli", ["--no-auth-warning", "-p", String(redisPort), ...args], {
      encoding: "utf8",
      env: { ...process.env, REDISCLI_AUTH: redisPassword() },
    }).trim();
  const until = async (what: string, probe: () => boolean, ms = 30_000) => {
    const end = Date.now() + ms;
    while (!probe()) {
      if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  };

  beforeAll(async () => {
    if (root) execFileSync("chmod", ["755", state]);
    pgPort = await freePort();
    redisPort = await freePort();
    env = { ...process.env, FLOTILLA_STATE_DIR: state, FLOTILLA_PG_PORT: String(pgPort), FLOTILLA_REDIS_PORT: String(redisPort) };
    const up = await stack("up");
    expect(up.code, up.stderr).toBe(0);
  }, 120_000);

  afterAll(async () => {
    await stack("down");
    rmSync(state, { recursive: true, force: true });
  });

  it("waits for Postgres's crash recovery before creating the database", async () => {
    sql("DROP DATABASE flotilla");
    // A backend killed -9 makes the postmaster end every session and replay its WAL; until it is
    // done, connections get "the database system is in recovery mode".
    const session = spawn(
      root ? "runuser" : `${PG_BIN}/psql`,
      [
        ...(root ? ["-u", "postgres", "--", `${PG_BIN}/psql`] : []),
        "-h",
        pgSocketDir,
        "-p",
        String(pgPort),
        "-d",
        "postgres",
        "-c",
        "SELECT pg_sleep(600)",
      ],
      { stdio: "ignore" },
    );
    let backend = "";
    await until("the sleeping session's backend", () =>
      Boolean((backend = sql("SELECT pid FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep(600)%'"))),
    );
    process.kill(Number(backend), "SIGKILL");
    const up = await stack("up");
    session.kill();
    expect(up.stderr).not.toMatch(/recovery mode|connection refused/);
    expect(up.code, up.stderr).toBe(0);
    expect(sql("SELECT count(*) FROM pg_database WHERE datname = 'flotilla'")).toBe("1");
  });

  it("runs Redis with an append-only file that keeps a write across kill -9", async () => {
    expect(redis("CONFIG", "GET", "appendonly")).toBe("appendonly\nyes");
    expect(redis("CONFIG", "GET", "appendfsync")).toBe("appendfsync\neverysec");
    redis("SET", "flotilla-stack-test", "kept");
    const aofDir = join(state, "redis", "appendonlydir");
    await until(
      "the write to reach the append-only file",
      () =>
        existsSync(aofDir) &&
        readdirSync(aofDir).some((f) => f.endsWith(".incr.aof") && readFileSync(join(aofDir, f), "utf8").includes("flotilla-stack-test")),
    );
    process.kill(Number(readFileSync(join(state, "redis", "redis.pid"), "utf8")), "SIGKILL");
    await until("Redis to be gone", () => {
      try {
        redis("PING");
        return false;
      } catch {
        return true;
      }
    });
    const up = await stack("up");
    expect(up.code, up.stderr).toBe(0);
    expect(redis("GET", "flotilla-stack-test")).toBe("kept");
  });
});
