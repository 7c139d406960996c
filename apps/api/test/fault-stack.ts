// A Postgres and a Redis of a suite's own (deploy/local/stack.sh with a private state dir and
// free ports), for tests that stop or kill them: the shared test stack serves other suites
// running at the same time. Removed with `down()`.
import { execFileSync } from "node:child_process";
import { readFileSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { repoRoot, testStack } from "../../../test/support/stack";
import { deployMigrations } from "../../../test/support/migrations";

async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
  const { port } = srv.address() as { port: number };
  await new Promise((r) => srv.close(r));
  return port;
}

export interface FaultStack {
  databaseUrl: string;
  redisUrl: string;
  /** `pg_ctl stop -m fast`: the server goes away, connections are cut. */
  stopPostgres(): void;
  startPostgres(): void;
  /** SIGKILL to redis-server, and its data files removed: it comes back empty. */
  killRedis(): void;
  startRedis(): void;
  down(): void;
}

export async function startFaultStack(): Promise<FaultStack> {
  const state = `${testStack.stateDir}-fault-${randomBytes(3).toString("hex")}`;
  const [pgPort, redisPort] = [await freePort(), await freePort()];
  const env = {
    ...process.env,
    FLOTILLA_STATE_DIR: state,
    FLOTILLA_PG_PORT: String(pgPort),
    FLOTILLA_REDIS_PORT: String(redisPort),
    FLOTILLA_PG_FSYNC: "off",
  };
  const stack = (cmd: string) =>
    execFileSync("bash", [join(repoRoot, "deploy/local/stack.sh"), cmd], { env, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
  const pgCtl = (...args: string[]) => {
    const cmd = ["/usr/lib/postgresql/15/bin/pg_ctl", "-D", join(state, "postgres"), ...args];
    execFileSync(
      process.getuid?.() === 0 ? "runuser" : cmd[0],
      process.getuid?.() === 0 ? ["-u", "postgres", "--", ...cmd] : cmd.slice(1),
      { stdio: "ignore" },
    );
  };
  stack("up");
  const vars = Object.fromEntries(
    stack("env")
      .trim()
      .split("\n")
      .map((l) => l.split(/=(.*)/s).slice(0, 2)),
  );
  await deployMigrations(vars.DATABASE_URL);
  return {
    databaseUrl: vars.DATABASE_URL,
    redisUrl: vars.REDIS_URL,
    stopPostgres: () => pgCtl("stop", "-m", "fast", "-w"),
    startPostgres: () => void stack("up"),
    killRedis: () => {
      const pid = Number(readFileSync(join(state, "redis", "redis.pid"), "utf8"));
      process.kill(pid, "SIGKILL");
      for (let i = 0; i < 100; i++) {
        try {
          process.kill(pid, 0);
        } catch {
          break;
        }
        execFileSync("sleep", ["0.05"]);
      }
      // Whatever persistence the stack turns on, the Redis that comes back has nothing.
      for (const f of ["appendonlydir", "appendonly.aof", "dump.rdb", "redis.pid"])
        rmSync(join(state, "redis", f), { recursive: true, force: true });
    },
    startRedis: () => void stack("up"),
    down: () => {
      try {
        stack("down");
      } finally {
        rmSync(state, { recursive: true, force: true });
      }
    },
  };
}
