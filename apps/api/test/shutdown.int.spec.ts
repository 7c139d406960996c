import { afterAll, beforeAll, describe, expect, it, inject } from "vitest";
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createTestDatabase, type TestDatabase } from "../../../test/support/database";
import { testQueuePrefix } from "../../../test/support/queue-prefix";

describe("flotilla-api process", () => {
  let db: TestDatabase;
  let child: ChildProcess;
  let stderr = "";
  const configDir = mkdtempSync(join(tmpdir(), "flotilla-shutdown-"));
  const port = 20000 + Math.floor(Math.random() * 20000);

  beforeAll(async () => {
    db = await createTestDatabase();
    // The deployed artefact, not tsx: esbuild emits no decorator metadata, which Nest's DI needs.
    execFileSync(process.execPath, [require.resolve("typescript/bin/tsc"), "-b", join(__dirname, "..")], { stdio: "inherit" });
    child = spawn(process.execPath, [join(__dirname, "../dist/main.js"), "all"], {
      env: {
        PATH: process.env.PATH,
        HOME: configDir,
        DATABASE_URL: db.url,
        REDIS_URL: inject("redisUrl"),
        FLOTILLA_PORT: String(port),
        FLOTILLA_CONFIG_DIR: configDir,
        FLOTILLA_QUEUE_PREFIX: testQueuePrefix("shutdown"),
      },
      stdio: ["ignore", "pipe", "pipe"],
    });
    child.stderr!.on("data", (d: Buffer) => (stderr += d.toString()));
    const end = Date.now() + 30_000;
    while (!stderr.includes("listening on")) {
      if (Date.now() > end || child.exitCode !== null) throw new Error(`API did not start: ${stderr}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  });
  afterAll(async () => {
    if (child.exitCode === null) child.kill("SIGKILL");
    await db.drop();
  });

  it("logs JSON lines, and on SIGTERM ends event streams, drains and exits 0", async () => {
    let stdout = "";
    child.stdout!.on("data", (d: Buffer) => (stdout += d.toString()));
    const token = JSON.parse(readFileSync(join(configDir, "config.json"), "utf8")).token as string;
    const res = await fetch(`http://127.0.0.1:${port}/api/v1/events`, { headers: { authorization: `Bearer ${token}` } });
    expect(res.status).toBe(200);
    const streamEnded = res.text().then(() => "ended");
    const exited = new Promise<number | null>((r) => child.once("exit", (code) => r(code)));
    child.kill("SIGTERM");
    expect(await exited).toBe(0);
    expect(await streamEnded).toBe("ended");
    expect(stderr).toContain("SIGTERM: draining and shutting down");
    const lines = stdout.trim().split("\n").filter(Boolean);
    expect(lines.length).toBeGreaterThan(0);
    for (const line of lines) expect(() => JSON.parse(line)).not.toThrow();
  });
});
