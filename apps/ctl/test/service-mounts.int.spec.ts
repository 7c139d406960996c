// `ctl service create --mount` and `ctl service update --mount-add/--mount-rm` against the real
// API: the flag's syntax read by core's parser (bad values refused naming the flag, before any
// request), and the edits applied to the current list by target.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestApi, type TestApi } from "../../api/test/support";
import { ctl } from "./run-ctl";

describe("ctl service --mount", () => {
  let api: TestApi;
  let env: Record<string, string>;
  const mounts = async (name: string) => JSON.parse((await ctl(["service", "inspect", name], env)).stdout)[0].spec.mounts as unknown[];
  beforeAll(async () => {
    api = await startTestApi({ FLOTILLA_ROLE: "api" });
    env = { FLOTILLA_CONFIG_DIR: api.config.configDir };
  });
  afterAll(() => api?.stop());

  it("creates a service with volume, bind and tmpfs mounts", async () => {
    const r = await ctl(
      [
        "service",
        "create",
        "-d",
        "--name",
        "db",
        "--mount",
        "type=volume,source=pgdata,target=/data",
        "--mount",
        "type=bind,src=/srv/conf,dst=/conf,readonly",
        "--mount",
        "type=tmpfs,target=/cache,tmpfs-size=1m",
        "busybox",
      ],
      env,
    );
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(await mounts("db")).toEqual([
      { type: "volume", source: "pgdata", target: "/data", readOnly: false },
      { type: "bind", source: "/srv/conf", target: "/conf", readOnly: true },
      { type: "tmpfs", target: "/cache", readOnly: false, tmpfsSizeBytes: 1048576 },
    ]);
  });

  it("adds, replaces by target and removes mounts on update", async () => {
    const r = await ctl(
      [
        "service",
        "update",
        "-d",
        "db",
        "--mount-rm",
        "/cache/",
        "--mount-add",
        "source=pgdata,target=/data,readonly",
        "--mount-add",
        "source=logs,target=/logs",
      ],
      env,
    );
    expect(r.stderr).toContain("db updated to version 2");
    expect(r.code).toBe(0);
    expect(await mounts("db")).toEqual([
      { type: "bind", source: "/srv/conf", target: "/conf", readOnly: true },
      { type: "volume", source: "pgdata", target: "/data", readOnly: true },
      { type: "volume", source: "logs", target: "/logs", readOnly: false },
    ]);
  });

  it.each([
    [["--mount", "type=volume,source=x"], /^ctl: --mount: invalid mount "type=volume,source=x": target is required/],
    [
      ["--mount", "type=bind,source=/a,target=/b,bind-propagation=rshared"],
      /^ctl: --mount: mount option "bind-propagation" is not supported/,
    ],
    [["--mount", "type=volume,source=x,target=relative"], /mounts\[0\]\.target|mount target must be an absolute path/],
  ])("refuses %j", async (flags, message) => {
    const r = await ctl(["service", "create", "-d", "--name", "bad", ...flags, "busybox"], env);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(message);
    expect((await ctl(["service", "ls", "-q"], env)).stdout.trim().split("\n")).toHaveLength(1);
  });
});
