// Finding 2 of issue 11: any local user could read and write the control plane's Postgres (trust
// auth on TCP) and Redis (no password), and so mint an admin token. These tests do that as the
// unprivileged `nobody` and expect to be refused, while the owner's URLs still connect.
import { execFileSync, spawnSync } from "node:child_process";
import { statSync } from "node:fs";
import { join } from "node:path";
import pg from "pg";
import IORedis from "ioredis";
import { describe, expect, it } from "vitest";
import { adminUrl, redisUrl, testStack } from "../support/stack";

const asRoot = process.getuid?.() === 0;

function asNobody(cmd: string, args: string[]): { code: number | null; out: string } {
  const r = spawnSync("runuser", ["-u", "nobody", "--", cmd, ...args], { encoding: "utf8", timeout: 20_000, input: "" });
  return { code: r.status, out: `${r.stdout}${r.stderr}` };
}

describe.skipIf(!asRoot)("the stack refuses other local users", () => {
  it("Postgres over TCP asks for a password and `nobody` has none", () => {
    const r = asNobody("psql", ["-w", "-h", "127.0.0.1", "-p", String(testStack.pgPort), "-U", "postgres", "postgres", "-tAc", "select 1"]);
    expect(r.code).not.toBe(0);
    expect(r.out).toMatch(/no password supplied|password authentication failed/);
  });

  it("a guessed password does not get in either", () => {
    const r = spawnSync(
      "runuser",
      [
        "-u",
        "nobody",
        "--",
        "psql",
        "-w",
        "-h",
        "127.0.0.1",
        "-p",
        String(testStack.pgPort),
        "-U",
        "postgres",
        "postgres",
        "-tAc",
        "select 1",
      ],
      {
        encoding: "utf8",
        env: { ...process.env, PGPASSWORD: "postgres" },
      },
    );
    expect(r.status).not.toBe(0);
    expect(`${r.stdout}${r.stderr}`).toContain("password authentication failed");
  });

  it("Postgres's unix socket is out of reach: it sits in the 0700 data dir", () => {
    const dataDir = join(testStack.stateDir, "postgres");
    expect(statSync(dataDir).mode & 0o077).toBe(0);
    const r = asNobody("psql", ["-w", "-h", dataDir, "-p", String(testStack.pgPort), "-U", "postgres", "postgres", "-tAc", "select 1"]);
    expect(r.code).not.toBe(0);
    expect(r.out).toMatch(/Permission denied|No such file/);
  });

  it("Redis answers `nobody` with NOAUTH and runs nothing", () => {
    const r = asNobody("redis-cli", ["-p", String(testStack.redisPort), "set", "flotilla-s11-probe", "owned"]);
    expect(r.out).toContain("NOAUTH");
    const r2 = asNobody("redis-cli", ["-p", String(testStack.redisPort), "config", "get", "requirepass"]);
    expect(r2.out).toContain("NOAUTH");
  });

  it("the passwords are readable by the stack's owner only, and never on a command line", () => {
    const secrets = join(testStack.stateDir, "secrets.env");
    expect(statSync(secrets).mode & 0o777).toBe(0o600);
    expect(asNobody("cat", [secrets]).out).toContain("Permission denied");
    const password = new URL(redisUrl()).password;
    const cmdlines = execFileSync("ps", ["-eo", "args"], { encoding: "utf8" });
    expect(cmdlines).not.toContain(password);
    expect(cmdlines).not.toContain(new URL(adminUrl()).password);
  });

  it("the owner's URLs (what the control plane and the tests use) still connect", async () => {
    const client = new pg.Client({ connectionString: adminUrl() });
    await client.connect();
    try {
      expect((await client.query("select 1 as one")).rows).toEqual([{ one: 1 }]);
    } finally {
      await client.end();
    }
    const redis = new IORedis(redisUrl(), { lazyConnect: true, maxRetriesPerRequest: 1 });
    try {
      await redis.connect();
      expect(await redis.ping()).toBe("PONG");
    } finally {
      redis.disconnect();
    }
  });
});
