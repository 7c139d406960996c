// `ctl service create --secret/--config` and `ctl service update --secret-add/--secret-rm/
// --config-add/--config-rm` against the real API: the flags read by core's parser (bad values
// refused naming the flag, before any request), the edits applied to the current lists by name;
// `--with-registry-auth` without credentials for the image's registry refused naming the flag.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestApi, type TestApi } from "../../api/test/support";
import { ctl } from "./run-ctl";

describe("ctl service --secret/--config", () => {
  let api: TestApi;
  let env: Record<string, string>;
  const dir = mkdtempSync(join(tmpdir(), "ctl-secrets-"));
  const spec = async (name: string) =>
    JSON.parse((await ctl(["service", "inspect", name], env)).stdout)[0].spec as { secrets: unknown[]; configs: unknown[] };
  beforeAll(async () => {
    api = await startTestApi({ FLOTILLA_ROLE: "api" });
    env = { FLOTILLA_CONFIG_DIR: api.config.configDir, DOCKER_CONFIG: join(dir, "docker") };
    writeFileSync(join(dir, "v"), "value");
    for (const [kind, name] of [
      ["secret", "db_pass"],
      ["secret", "api_key"],
      ["config", "app.conf"],
    ])
      expect((await ctl([kind, "create", name, join(dir, "v")], env)).code).toBe(0);
  });
  afterAll(async () => {
    await api?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it("creates a service with a secret and a config", async () => {
    const r = await ctl(
      [
        "service",
        "create",
        "-d",
        "--name",
        "web",
        "--secret",
        "db_pass",
        "--config",
        "source=app.conf,target=/etc/app.conf,mode=0440",
        "busybox",
      ],
      env,
    );
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(await spec("web")).toMatchObject({
      secrets: [{ source: "db_pass", target: "/run/secrets/db_pass", uid: "0", gid: "0", mode: 0o444 }],
      configs: [{ source: "app.conf", target: "/etc/app.conf", uid: "0", gid: "0", mode: 0o440 }],
    });
  });

  it("adds, replaces by name and removes secrets and configs on update", async () => {
    const r = await ctl(
      [
        "service",
        "update",
        "-d",
        "web",
        "--secret-add",
        "src=db_pass,target=pw,uid=1000,mode=0400",
        "--secret-add",
        "api_key",
        "--config-rm",
        "app.conf",
      ],
      env,
    );
    expect(r.stderr).toContain("web updated to version 2");
    expect(r.code).toBe(0);
    expect(await spec("web")).toMatchObject({
      secrets: [
        { source: "db_pass", target: "/run/secrets/pw", uid: "1000", gid: "0", mode: 0o400 },
        { source: "api_key", target: "/run/secrets/api_key", uid: "0", gid: "0", mode: 0o444 },
      ],
      configs: [],
    });
    const rm = await ctl(["secret", "rm", "api_key"], env);
    expect(rm.code).toBe(1);
    expect(rm.stderr).toContain("secret api_key is in use by service web");
    expect((await ctl(["service", "update", "-d", "web", "--secret-rm", "api_key"], env)).code).toBe(0);
    expect((await ctl(["secret", "rm", "api_key"], env)).code).toBe(0);
  });

  it.each([
    [["--secret", "source=db_pass,mode=rw"], /^ctl: --secret: invalid secret mode "rw"/],
    [["--secret", "source=db_pass,driver=vault"], /^ctl: --secret: secret option "driver" is not supported/],
    [["--config", "target=/x"], /^ctl: --config: invalid config "target=\/x": source is required/],
    [["--secret", "ghost"], /secret not found: ghost/],
    [["--with-registry-auth"], /^ctl: --with-registry-auth: cannot read .*config.json.*docker login docker.io first/],
  ])("refuses %j", async (flags, message) => {
    const r = await ctl(["service", "create", "-d", "--name", "bad", ...flags, "busybox"], env);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(message);
    expect((await ctl(["service", "ls", "-q"], env)).stdout.trim().split("\n")).toHaveLength(1);
  });
});
