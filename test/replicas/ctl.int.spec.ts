// ctl against two real `flotilla-api` processes (FLOTILLA_URL names both): after the first is
// killed, commands are answered by the second, and a following `ctl events` resumes there after
// the last event it printed, missing nothing and printing nothing twice. `ctl login` saves the
// replicas the control plane lists.
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { ctl, ctlArgv, ctlEnv } from "../../apps/ctl/test/run-ctl";
import { startApiReplicas, type ApiReplicas } from "../support/api-replicas";

describe("ctl over two API replicas, one killed", () => {
  let cp: ApiReplicas;
  let env: Record<string, string>;
  let events: ChildProcess | undefined;
  const eventLines: { id: string; kind: string; action: string; data: Record<string, unknown> }[] = [];

  beforeAll(async () => {
    cp = await startApiReplicas(2, inject("redisUrl"), (urls) => ({ FLOTILLA_PUBLIC_URLS: urls.join(",") }));
    env = { FLOTILLA_URL: cp.urls.join(","), FLOTILLA_TOKEN: cp.token };
  });
  afterAll(async () => {
    events?.kill("SIGKILL");
    await cp?.stop();
  });

  const until = async (what: string, cond: () => boolean, ms = 30_000) => {
    const end = Date.now() + ms;
    while (!cond()) {
      if (Date.now() > end) throw new Error(`${what}: not within ${ms} ms`);
      await new Promise((r) => setTimeout(r, 100));
    }
  };

  it("login saves every replica the control plane lists, after the URL given", async () => {
    const dir = mkdtempSync(join(tmpdir(), "flotilla-login-"));
    try {
      const r = await ctl(["login", "--url", cp.urls[1], "--token", cp.token], { FLOTILLA_CONFIG_DIR: dir });
      expect(r.code, r.stderr).toBe(0);
      expect(r.stderr).toContain(`logged in to ${cp.urls[1]}, ${cp.urls[0]}`);
      expect(JSON.parse(readFileSync(join(dir, "config.json"), "utf8"))).toEqual({ url: `${cp.urls[1]},${cp.urls[0]}`, token: cp.token });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("keeps working through the second replica, and the event stream resumes there", async () => {
    let buffer = "";
    // From the first event on (--since 0): ctl's start-up may take longer than the create below,
    // and a stream opened after it would start past the create.
    events = spawn(process.execPath, ctlArgv(["events", "--kind", "service", "--since", "0", "--json"]), {
      env: ctlEnv(env),
      stdio: ["ignore", "pipe", "pipe"],
    });
    events.stdout!.on("data", (d: Buffer) => {
      buffer += d.toString();
      const lines = buffer.split("\n");
      buffer = lines.pop()!;
      for (const l of lines.filter(Boolean)) eventLines.push(JSON.parse(l) as (typeof eventLines)[number]);
    });
    // The stream is open on the first replica once the create shows up.
    const created = await ctl(["service", "create", "--detach", "--name", "web", "--replicas", "2", "busybox"], env);
    expect(created.code, created.stderr).toBe(0);
    await until("the create event", () => eventLines.some((e) => e.action === "create"));

    await cp.kill(0);
    // While nobody is listening on the first replica's port any more, every command still works.
    const scaled = await ctl(["service", "scale", "--detach", "web=4"], env);
    expect(scaled.code, scaled.stderr).toBe(0);
    const ls = await ctl(["service", "ls", "--json"], env);
    expect(ls.code, ls.stderr).toBe(0);
    expect(JSON.parse(ls.stdout)).toEqual([expect.objectContaining({ name: "web", desired: 4 })]);
    const status = await ctl(["status"], env);
    expect(status.stdout).toContain(`API:      ${cp.urls[1]} (ok`);
    expect(status.stdout).toContain(`Replicas: ${cp.urls.join(", ")}`);

    // The event stream resumed on the second replica: the scale shows up, once, after the create.
    await until("the scale event", () => eventLines.some((e) => e.action === "scale"));
    const ids = eventLines.map((e) => e.id);
    expect(new Set(ids).size).toBe(ids.length);
    expect(eventLines.map((e) => e.action).filter((a) => a === "create" || a === "scale")).toEqual(["create", "scale"]);
    expect(events.exitCode).toBeNull();

    // With no replica left, ctl names both and fails.
    await cp.kill(1);
    const none = await ctl(["service", "ls"], env);
    expect(none.code).toBe(1);
    expect(none.stderr).toContain(`cannot reach the Flotilla API at ${cp.urls[0]}: ECONNREFUSED; ${cp.urls[1]}: ECONNREFUSED`);
  });
});
