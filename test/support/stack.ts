// Where the integration tests' own Postgres and Redis live: separate from a developer's stack.
import { execFileSync } from "node:child_process";
import { tmpdir } from "node:os";
import { join } from "node:path";

export const repoRoot = join(__dirname, "..", "..");

export const testStack = {
  // Postgres runs as the `postgres` user when we are root, so keep its data out of /root.
  stateDir: process.env.FLOTILLA_TEST_STATE_DIR ?? join(process.getuid?.() === 0 ? "/var/tmp" : tmpdir(), "flotilla-test-stack"),
  pgPort: Number(process.env.FLOTILLA_TEST_PG_PORT ?? 55442),
  redisPort: Number(process.env.FLOTILLA_TEST_REDIS_PORT ?? 56389),
};

export function stackEnv(): NodeJS.ProcessEnv {
  return {
    ...process.env,
    FLOTILLA_STATE_DIR: testStack.stateDir,
    FLOTILLA_PG_PORT: String(testStack.pgPort),
    FLOTILLA_REDIS_PORT: String(testStack.redisPort),
    // Test data is disposable; fsync only slows the suite down.
    FLOTILLA_PG_FSYNC: "off",
  };
}

export function stack(cmd: "up" | "down" | "status" | "env"): string {
  return execFileSync("bash", [join(repoRoot, "deploy/local/stack.sh"), cmd], { env: stackEnv(), encoding: "utf8" });
}

export function adminUrl(database = "postgres"): string {
  const user = process.getuid?.() === 0 ? "postgres" : (process.env.USER ?? "postgres");
  return `postgresql://${user}@127.0.0.1:${testStack.pgPort}/${database}`;
}

export const redisUrl = () => `redis://127.0.0.1:${testStack.redisPort}`;
export const TEMPLATE_DB = "flotilla_template";
