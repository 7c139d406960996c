// The systemd units of deploy/systemd, without systemd (this machine has no systemd PID 1):
// `systemd-analyze verify` reads them; their ExecStart and EnvironmentFile lines name what the
// deploy layout installs (this repository's build under /opt/flotilla-control-plane, the env
// examples under /etc/flotilla-control-plane); then each ExecStart is run the way systemd would run
// it (environment from the EnvironmentFiles in order, read by systemd's rules; KillSignal to stop)
// against the test's Postgres and Redis: the api answers with role api, the worker alone creates
// a service's task, and both stop with exit 0 within TimeoutStopSec.
import { execFileSync, spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { freePort } from "../support/api-replicas";
import { createTestDatabase, type TestDatabase } from "../support/database";
import { testQueuePrefix } from "../support/queue-prefix";

const ROOT = resolve(__dirname, "..", "..");
const UNITS = join(ROOT, "deploy", "systemd");
const INSTALL_DIR = "/opt/flotilla-control-plane";
const ENV_DIR = "/etc/flotilla-control-plane";
const SYSTEMD_ANALYZE = "/usr/bin/systemd-analyze";

/** The [Service] section's settings, each key with every value it was given, in order. */
function serviceSection(file: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  let section = "";
  for (const raw of readFileSync(file, "utf8").split("\n")) {
    const line = raw.trim();
    if (!line || line.startsWith("#") || line.startsWith(";")) continue;
    const header = /^\[(.+)\]$/.exec(line);
    if (header) {
      section = header[1];
      continue;
    }
    if (section !== "Service") continue;
    const at = line.indexOf("=");
    out.set(line.slice(0, at), [...(out.get(line.slice(0, at)) ?? []), line.slice(at + 1)]);
  }
  return out;
}

/**
 * An EnvironmentFile as systemd reads it, for the forms the examples may use: `KEY=VALUE` lines,
 * `#`/`;` comments and blank lines, a value optionally in single or double quotes. Anything else
 * fails the test rather than be read differently from systemd.
 */
function readEnvironmentFile(file: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const raw of readFileSync(file, "utf8").split("\n")) {
    const line = raw.trim();
    if (!line || line.startsWith("#") || line.startsWith(";")) continue;
    const m = /^([A-Za-z_][A-Za-z0-9_]*)=(.*)$/.exec(line);
    if (!m) throw new Error(`${file}: not KEY=VALUE: ${line}`);
    const quoted = /^(['"])(.*)\1$/.exec(m[2]);
    if (!quoted && /["'\\$`]/.test(m[2])) throw new Error(`${file}: ${m[1]} needs quoting rules this reader does not apply`);
    env[m[1]] = quoted ? quoted[2] : m[2];
  }
  return env;
}

/** `EnvironmentFile=-/path`: the dash makes a missing file no error. */
const envFilePath = (v: string) => ({ optional: v.startsWith("-"), path: v.replace(/^-/, "") });

describe("deploy/systemd units", () => {
  let db: TestDatabase;
  const state = mkdtempSync(join(tmpdir(), "flotilla-units-"));
  const children: ChildProcess[] = [];

  beforeAll(async () => {
    db = await createTestDatabase();
    // The installed tree is a built checkout: the ExecStart's script must exist in it.
    execFileSync(process.execPath, [require.resolve("typescript/bin/tsc"), "-b", join(ROOT, "apps", "api")], { stdio: "inherit" });
  });
  afterAll(async () => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
    await db?.drop();
    rmSync(state, { recursive: true, force: true });
  });

  it.skipIf(!existsSync(SYSTEMD_ANALYZE))("systemd-analyze verify accepts both units", () => {
    const r = spawnSync(SYSTEMD_ANALYZE, ["verify", join(UNITS, "flotilla-api.service"), join(UNITS, "flotilla-worker.service")], {
      encoding: "utf8",
    });
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
  });

  it.each([
    ["flotilla-api.service", "api", ["control-plane.env", "api.env"]],
    ["flotilla-worker.service", "worker", ["control-plane.env", "worker.env"]],
  ])("%s runs this repository's build in its role, with settings whose examples are here", (unit, role, envFiles) => {
    const s = serviceSection(join(UNITS, unit));
    expect(s.get("ExecStart")).toEqual([`/usr/bin/node --max-semi-space-size=64 ${INSTALL_DIR}/apps/api/dist/main.js ${role}`]);
    expect(existsSync(join(ROOT, "apps", "api", "dist", "main.js"))).toBe(true);
    const files = s.get("EnvironmentFile")!.map(envFilePath);
    expect(files.map((f) => f.path)).toEqual(envFiles.map((f) => `${ENV_DIR}/${f}`));
    // The shared file is required; the per-role one may be left out.
    expect(files.map((f) => f.optional)).toEqual([false, true]);
    for (const f of envFiles) expect(existsSync(join(UNITS, `${f}.example`)), `${f}.example`).toBe(true);
    // The agent's layout (libs/provision) owns /opt/flotilla and /etc/flotilla: never shared.
    expect(s.get("ExecStart")![0]).not.toMatch(/\/opt\/flotilla\//);
  });

  it("runs both ExecStarts as systemd would: the api serves, the worker works, KillSignal stops both cleanly", async () => {
    const port = await freePort();
    /** A unit's process: its EnvironmentFiles' examples in order, then what points it at this test's stack. */
    const start = (unit: string) => {
      const s = serviceSection(join(UNITS, unit));
      const env: Record<string, string> = { PATH: process.env.PATH ?? "/usr/bin:/bin" };
      for (const v of s.get("EnvironmentFile")!) {
        const f = envFilePath(v);
        Object.assign(env, readEnvironmentFile(join(UNITS, `${f.path.slice(ENV_DIR.length + 1)}.example`)));
      }
      Object.assign(env, {
        DATABASE_URL: db.url,
        REDIS_URL: inject("redisUrl"),
        FLOTILLA_HOST: "127.0.0.1",
        FLOTILLA_PORT: String(port),
        FLOTILLA_CONFIG_DIR: join(state, "ctl"),
        FLOTILLA_DATA_DIR: join(state, "data"),
        FLOTILLA_QUEUE_PREFIX: testQueuePrefix("units"),
      });
      const [exe, ...args] = s.get("ExecStart")![0].split(" ");
      const argv = args.map((a) => a.replace(INSTALL_DIR, ROOT));
      expect(exe).toBe("/usr/bin/node");
      const child = spawn(exe, argv, { env, stdio: ["ignore", "ignore", "pipe"] });
      let stderr = "";
      child.stderr!.on("data", (d: Buffer) => (stderr += d.toString()));
      children.push(child);
      return { child, settings: s, stderr: () => stderr };
    };
    const until = async (what: string, cond: () => Promise<boolean>, ms = 60_000) => {
      const end = Date.now() + ms;
      while (!(await cond().catch(() => false))) {
        if (Date.now() > end) throw new Error(`${what}: not within ${ms} ms`);
        await new Promise((r) => setTimeout(r, 200));
      }
    };
    const url = `http://127.0.0.1:${port}`;

    const api = start("flotilla-api.service");
    await until("the api to answer", async () => (await fetch(`${url}/api/v1/health`)).ok);
    expect(await (await fetch(`${url}/api/v1/health`)).json()).toMatchObject({ status: "ok", role: "api" });
    // The first start writes the admin token just after it starts listening.
    await until("the admin token", () => Promise.resolve(existsSync(join(state, "ctl", "config.json"))));
    const token = (JSON.parse(readFileSync(join(state, "ctl", "config.json"), "utf8")) as { token: string }).token;
    const call = async (method: string, path: string, body?: unknown) => {
      const res = await fetch(url + path, {
        method,
        headers: { authorization: `Bearer ${token}`, ...(body ? { "content-type": "application/json" } : {}) },
        body: body ? JSON.stringify(body) : undefined,
      });
      expect(res.status, `${method} ${path}`).toBeLessThan(300);
      return (await res.json()) as unknown;
    };
    const svc = (await call("POST", "/api/v1/services", { name: "unit-web", image: "busybox", replicas: 1 })) as { id: string };
    const tasks = async () => (await call("GET", `/api/v1/tasks?service=${svc.id}`)) as unknown[];
    // The api role runs no queue consumer: the reconcile job waits for a worker.
    await new Promise((r) => setTimeout(r, 1000));
    expect(await tasks()).toEqual([]);

    const worker = start("flotilla-worker.service");
    await until("the worker to create the task", async () => (await tasks()).length === 1);

    for (const p of [api, worker]) {
      const signal = p.settings.get("KillSignal")![0] as NodeJS.Signals;
      const timeoutS = Number(p.settings.get("TimeoutStopSec")![0]);
      const exited = new Promise<number | null>((r) => p.child.once("exit", (code) => r(code)));
      p.child.kill(signal);
      const code = await Promise.race([exited, new Promise<string>((r) => setTimeout(() => r("timeout"), timeoutS * 1000))]);
      expect(code, p.stderr()).toBe(0);
    }
  });
});
