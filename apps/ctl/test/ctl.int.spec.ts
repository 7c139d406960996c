import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { execFile } from "node:child_process";
import { createServer } from "node:net";
import { startTestApi, type TestApi } from "../../api/test/support";
import { ctl, ctlArgv, ctlEnv } from "./run-ctl";

describe("ctl against the real API", () => {
  let api: TestApi;
  let env: Record<string, string>;
  beforeAll(async () => {
    api = await startTestApi({ FLOTILLA_ROLE: "api" });
    // The API's first start wrote url + token where ctl looks: use exactly that.
    env = { FLOTILLA_CONFIG_DIR: api.config.configDir };
  });
  afterAll(() => api?.stop());

  it("finds the API and token the first start wrote, and reports status", async () => {
    const r = await ctl(["status"], env);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`API:      ${api.url} (ok`);
    expect(r.stdout).toMatch(/Postgres: ok\nRedis: {4}ok/);
  });

  it("creates, lists and revokes tokens; data on stdout, messages on stderr", async () => {
    const created = await ctl(["token", "create", "deploy-bot"], env);
    expect(created.code).toBe(0);
    expect(created.stdout.trim()).toMatch(/^flt_/);
    const ls = await ctl(["token", "ls", "--json"], env);
    expect(JSON.parse(ls.stdout).map((t: { name: string }) => t.name)).toEqual(["admin", "deploy-bot"]);
    const rm = await ctl(["token", "rm", "deploy-bot"], env);
    expect(rm).toMatchObject({ code: 0, stdout: "", stderr: "revoked deploy-bot\n" });
  });

  it("exits non-zero with the API's message", async () => {
    const dup = await ctl(["token", "create", "admin"], env);
    expect(dup).toMatchObject({ code: 1, stderr: 'ctl: a token named "admin" already exists\n' });
    const bad = await ctl(["token", "ls"], { ...env, FLOTILLA_TOKEN: "flt_nope" });
    expect(bad).toMatchObject({ code: 1, stderr: "ctl: invalid API token: it is unknown or was revoked\n" });
  });

  it("says clearly when the API cannot be reached", async () => {
    // A port that was just free: nothing listens there (fetch refuses "bad" ports like 1).
    const port = await new Promise<number>((resolve) => {
      const srv = createServer().listen(0, "127.0.0.1", () => {
        const p = (srv.address() as { port: number }).port;
        srv.close(() => resolve(p));
      });
    });
    const r = await ctl(["status"], { FLOTILLA_URL: `http://127.0.0.1:${port}`, FLOTILLA_TOKEN: "x" });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`ctl: cannot reach the Flotilla API at http://127.0.0.1:${port}: ECONNREFUSED`);
  });

  it("follows the event stream", async () => {
    const child = execFile(process.execPath, ctlArgv(["events", "--kind", "token"]), { env: ctlEnv(env), encoding: "utf8" });
    let output = "";
    child.stdout!.on("data", (d: string) => (output += d));
    // Nothing tells when ctl's stream is open (its start takes seconds on a loaded machine), so
    // make a new token every half second until one shows: only events after it connected can.
    const end = Date.now() + 30_000;
    for (let i = 0; !output.includes("watched") && Date.now() < end; i++) {
      await api.fetch("/api/v1/tokens", { method: "POST", body: JSON.stringify({ name: `watched-${i}` }) });
      await new Promise((r) => setTimeout(r, 500));
    }
    child.kill();
    expect(output).toMatch(/token create \S+ \(name=watched-\d+\)/);
  });
});
