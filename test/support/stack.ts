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

// The stack's passwords are generated at its first start; `stack.sh env` prints URLs carrying them.
let urls: { database: string; redis: string } | undefined;
function stackUrls(): { database: string; redis: string } {
  if (!urls) {
    const vars = Object.fromEntries(
      stack("env")
        .trim()
        .split("\n")
        .map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1)]),
    );
    urls = { database: vars.DATABASE_URL!, redis: vars.REDIS_URL! };
  }
  return urls;
}

/** The superuser's URL for `database` on the test stack (password included). */
export function adminUrl(database = "postgres"): string {
  const url = new URL(stackUrls().database);
  url.pathname = `/${database}`;
  return url.toString();
}

export const redisUrl = () => stackUrls().redis;
export const TEMPLATE_DB = "flotilla_template";
