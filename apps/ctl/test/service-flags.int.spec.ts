// The service flags of issue 15 for settings the API already had: --update-monitor,
// --update-max-failure-ratio, every --rollback-*, --restart-window, --entrypoint, --env-file,
// --hostname, --user, --workdir, --container-label,
// --publish-add/--publish-rm and `service update --force`, against the real API.
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestApi, type TestApi } from "../../api/test/support";
import { ctl } from "./run-ctl";

describe("ctl service flags", () => {
  let api: TestApi;
  let env: Record<string, string>;
  const dir = mkdtempSync(join(tmpdir(), "ctl-flags-"));
  const inspect = async (name: string) => JSON.parse((await ctl(["service", "inspect", name], env)).stdout)[0];
  beforeAll(async () => {
    api = await startTestApi({ FLOTILLA_ROLE: "api" });
    env = { FLOTILLA_CONFIG_DIR: api.config.configDir };
  });
  afterAll(() => api?.stop());

  it("creates a service with update, rollback and restart settings, an entrypoint and env files", async () => {
    writeFileSync(join(dir, "a.env"), "# base\nA=1\nB=from-a\n");
    writeFileSync(join(dir, "b.env"), "B=from-b\nC=3\n");
    const r = await ctl(
      [
        "service",
        "create",
        "-d",
        "--name",
        "web",
        "--update-monitor",
        "30s",
        "--update-max-failure-ratio",
        "0.25",
        "--rollback-parallelism",
        "2",
        "--rollback-delay",
        "1s",
        "--rollback-order",
        "start-first",
        "--rollback-failure-action",
        "continue",
        "--rollback-monitor",
        "10s",
        "--rollback-max-failure-ratio",
        "0.5",
        "--restart-window",
        "2m",
        "--entrypoint",
        "/bin/sh -c 'exec httpd -f'",
        "--env-file",
        join(dir, "a.env"),
        "--env-file",
        join(dir, "b.env"),
        "--env",
        "C=flag",
        "--hostname",
        "web-host",
        "-u",
        "1000:1000",
        "--workdir",
        "/app",
        "--container-label",
        "team=web",
        "busybox",
      ],
      env,
    );
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    const { spec } = await inspect("web");
    expect(spec.updateConfig).toMatchObject({ monitorMs: 30_000, maxFailureRatio: 0.25 });
    expect(spec.rollbackConfig).toEqual({
      parallelism: 2,
      delayMs: 1000,
      order: "start-first",
      failureAction: "continue",
      monitorMs: 10_000,
      maxFailureRatio: 0.5,
    });
    expect(spec.restartPolicy.windowMs).toBe(120_000);
    expect(spec.command).toEqual(["/bin/sh", "-c", "exec httpd -f"]);
    expect(spec.env).toEqual({ A: "1", B: "from-b", C: "flag" });
    expect(spec).toMatchObject({ hostname: "web-host", user: "1000:1000", workdir: "/app", containerLabels: { team: "web" } });
  });

  it("adds and removes published ports by port and protocol", async () => {
    const add = await ctl(
      ["service", "update", "-d", "web", "--publish-add", "8080:80", "--publish-add", "published=53,target=53,protocol=udp,mode=host"],
      env,
    );
    expect(add.code, add.stderr).toBe(0);
    expect((await inspect("web")).spec.ports).toEqual([
      { published: 8080, target: 80, protocol: "tcp", mode: "ingress" },
      { published: 53, target: 53, protocol: "udp", mode: "host" },
    ]);
    const change = await ctl(["service", "update", "-d", "web", "--publish-rm", "53/udp", "--publish-add", "8080:81"], env);
    expect(change.code, change.stderr).toBe(0);
    expect((await inspect("web")).spec.ports).toEqual([{ published: 8080, target: 81, protocol: "tcp", mode: "ingress" }]);
    const bad = await ctl(["service", "update", "-d", "web", "--publish-rm", "http"], env);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/^ctl: --publish-rm: expected PUBLISHED\[\/tcp\|udp\], got "http"/);
  });

  it("forces a new task version with nothing changed", async () => {
    const before = await inspect("web");
    const r = await ctl(["service", "update", "-d", "--force", "web"], env);
    expect(r.code, r.stderr).toBe(0);
    const after = await inspect("web");
    expect(after.version).toBe(before.version + 1);
    expect(after.taskVersion).toBe(before.taskVersion + 1);
    expect(after.spec).toEqual(before.spec);
    // Without --force, the same nothing changes nothing.
    const same = await ctl(["service", "update", "-d", "--env", "A=1", "--env", "B=from-b", "--env", "C=flag", "web"], env);
    expect(same.code, same.stderr).toBe(0);
    expect((await inspect("web")).version).toBe(after.version);
  });

  it("sets a health check with --health-*, changes one field, and disables the image's with --no-healthcheck", async () => {
    const r = await ctl(
      [
        "service",
        "create",
        "-d",
        "--name",
        "hc",
        "--health-cmd",
        "wget -q -O- localhost:80/health",
        "--health-interval",
        "5s",
        "--health-timeout",
        "2s",
        "--health-start-period",
        "30s",
        "--health-retries",
        "4",
        "busybox",
      ],
      env,
    );
    expect(r.code, r.stderr).toBe(0);
    const created = await inspect("hc");
    expect(created.spec.healthcheck).toEqual({
      test: ["CMD-SHELL", "wget -q -O- localhost:80/health"],
      intervalMs: 5000,
      timeoutMs: 2000,
      startPeriodMs: 30_000,
      retries: 4,
    });
    expect((await ctl(["service", "update", "-d", "--health-retries", "2", "hc"], env)).code).toBe(0);
    const one = await inspect("hc");
    expect(one.spec.healthcheck).toEqual({ ...created.spec.healthcheck, retries: 2 });
    // A new health check reaches the containers: the tasks roll.
    expect(one.taskVersion).toBe(created.taskVersion + 1);
    expect((await ctl(["service", "update", "-d", "--no-healthcheck", "hc"], env)).code).toBe(0);
    expect((await inspect("hc")).spec.healthcheck).toEqual({ test: ["NONE"], intervalMs: 0, timeoutMs: 0, startPeriodMs: 0, retries: 0 });
    // A disabled check takes no interval: the API's message names the field, nothing changes.
    const bad = await ctl(["service", "update", "-d", "--health-interval", "1s", "hc"], env);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/disabled health check .*takes no interval/);
    expect((await inspect("hc")).spec.healthcheck.intervalMs).toBe(0);
  });

  it.each([
    [["--no-healthcheck", "--health-retries", "2"], /^ctl: --no-healthcheck conflicts with --health-\* options/],
    [["--health-interval", "often"], /^ctl: --health-interval: invalid duration/],
    [["--health-retries", "-1"], /^ctl: --health-retries: expected a whole number/],
    [["--health-cmd", ""], /^ctl: --health-cmd: expected a command/],
    [["--update-max-failure-ratio", "2"], /^ctl: --update-max-failure-ratio: expected a number from 0 to 1, got "2"/],
    [["--rollback-monitor", "soon"], /^ctl: --rollback-monitor: invalid duration/],
    // Node 20 reads a `--env-file` anywhere on its command line itself (and exits 9); the
    // supported Node (22, package.json engines) leaves the script's arguments alone.
    ...(Number(process.versions.node.split(".")[0]) >= 22
      ? [[["--env-file", "/nonexistent.env"], /^ctl: --env-file: cannot read \/nonexistent\.env/] as [string[], RegExp]]
      : []),
    [["--entrypoint", "'unterminated"], /^ctl: --entrypoint: .*unterminated quote/],
  ])("refuses %j before sending anything", async (flags, message) => {
    const r = await ctl(["service", "create", "-d", "--name", "bad", ...flags, "busybox"], env);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(message);
  });
});
