// The control-plane bundle (scripts/build-control-plane-bundle.mjs): unpacked in an empty
// directory and started with its launcher, its own Node runtime runs the API and the workers
// against the test's Postgres and Redis, serving the REST API, the console and the OpenAPI UI;
// SIGTERM stops it cleanly. This is what a host without Node or the repository would run.
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, readlinkSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { freePort } from "../support/api-replicas";
import { createTestDatabase, type TestDatabase } from "../support/database";
import { testQueuePrefix } from "../support/queue-prefix";

const ROOT = resolve(__dirname, "..", "..");

describe("control-plane bundle", () => {
  const dir = mkdtempSync(join(tmpdir(), "flotilla-cp-bundle-test-"));
  const unpacked = join(dir, "cp");
  let db: TestDatabase;
  let child: ChildProcess | undefined;

  beforeAll(async () => {
    if (!existsSync(join(ROOT, "apps", "console", "dist", "index.html"))) throw new Error("the console is not built: run `npm run build`");
    execFileSync(process.execPath, [require.resolve("typescript/bin/tsc"), "-b", join(ROOT, "apps", "api")], { stdio: "inherit" });
    execFileSync(process.execPath, [join(ROOT, "scripts", "build-control-plane-bundle.mjs"), "--out", join(dir, "cp.tar.gz")], {
      stdio: "inherit",
    });
    execFileSync("mkdir", ["-p", unpacked]);
    execFileSync("tar", ["-xzf", join(dir, "cp.tar.gz"), "-C", unpacked]);
    db = await createTestDatabase();
  }, 180_000);
  afterAll(async () => {
    if (child && child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    await db?.drop();
    rmSync(dir, { recursive: true, force: true });
  });

  it("runs the control plane with its own runtime, serves API, console and docs, and stops on SIGTERM", async () => {
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    let stderr = "";
    // The launcher runs the bundle's node, whatever the PATH holds (checked through /proc below).
    child = spawn(join(unpacked, "flotilla-control-plane"), ["all"], {
      cwd: dir,
      env: {
        PATH: "/usr/bin:/bin",
        DATABASE_URL: db.url,
        REDIS_URL: inject("redisUrl"),
        FLOTILLA_PORT: String(port),
        FLOTILLA_CONFIG_DIR: join(dir, "ctl"),
        FLOTILLA_DATA_DIR: join(dir, "data"),
        FLOTILLA_QUEUE_PREFIX: testQueuePrefix("bundle"),
      },
      stdio: ["ignore", "ignore", "pipe"],
    });
    child.stderr!.on("data", (d: Buffer) => (stderr += d.toString()));
    const end = Date.now() + 60_000;
    while (
      !existsSync(join(dir, "ctl", "config.json")) ||
      !(await fetch(`${url}/api/v1/health`).then(
        (r) => r.ok,
        () => false,
      ))
    ) {
      if (child.exitCode !== null || Date.now() > end) throw new Error(`the bundle's control plane did not start: ${stderr}`);
      await new Promise((r) => setTimeout(r, 200));
    }
    expect(readlinkSync(`/proc/${child.pid}/exe`)).toBe(join(unpacked, "node"));
    expect(await (await fetch(`${url}/api/v1/health`)).json()).toMatchObject({ status: "ok", role: "all" });

    // The console from the bundle's copy, the OpenAPI document and its UI's assets.
    const page = await fetch(`${url}/services`);
    expect(page.status).toBe(200);
    expect(await page.text()).toBe(readFileSync(join(unpacked, "console", "index.html"), "utf8"));
    expect(((await (await fetch(`${url}/api/docs-json`)).json()) as { paths: object }).paths).toHaveProperty(["/api/v1/control-plane"]);
    const css = await fetch(`${url}/api/docs/swagger-ui.css`);
    expect([css.status, css.headers.get("content-type")]).toEqual([200, expect.stringMatching(/^text\/css/)]);

    // The API and the workers: a service's task is created by the bundle's reconcile worker.
    const token = (JSON.parse(readFileSync(join(dir, "ctl", "config.json"), "utf8")) as { token: string }).token;
    const auth = { authorization: `Bearer ${token}` };
    const created = await fetch(`${url}/api/v1/services`, {
      method: "POST",
      headers: { ...auth, "content-type": "application/json" },
      body: JSON.stringify({ name: "bundled", image: "busybox", replicas: 1 }),
    });
    expect(created.status).toBe(201);
    const { id } = (await created.json()) as { id: string };
    const taskEnd = Date.now() + 30_000;
    while (((await (await fetch(`${url}/api/v1/tasks?service=${id}`, { headers: auth })).json()) as unknown[]).length !== 1) {
      if (Date.now() > taskEnd) throw new Error(`no task from the bundle's worker: ${stderr}`);
      await new Promise((r) => setTimeout(r, 200));
    }

    const exited = new Promise<number | null>((r) => child!.once("exit", (code) => r(code)));
    child.kill("SIGTERM");
    expect(await exited).toBe(0);
  });
});
