// `ctl secret` and `ctl config` against the real API: create from a file and from stdin, ls,
// inspect (a secret without its value, a config decoded), rm; the value never printed for a secret.
import { execFile } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestApi, type TestApi } from "../../api/test/support";
import { ctl, ctlArgv, ctlEnv, type CtlResult } from "./run-ctl";

describe("ctl secret and ctl config", () => {
  let api: TestApi;
  let env: Record<string, string>;
  const VALUE = "hunter2-and-more";
  const withStdin = (args: string[], input: string) =>
    new Promise<CtlResult>((resolve) => {
      const child = execFile(process.execPath, ctlArgv(args), { env: ctlEnv(env), encoding: "utf8" }, (err, stdout, stderr) =>
        resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
      );
      child.stdin!.end(input);
    });
  beforeAll(async () => {
    api = await startTestApi({ FLOTILLA_ROLE: "api" });
    env = { FLOTILLA_CONFIG_DIR: api.config.configDir };
  });
  afterAll(() => api?.stop());

  it("creates a secret from stdin and a config from a file, and lists them", async () => {
    const s = await withStdin(["secret", "create", "pw", "-"], VALUE);
    expect(s.stderr).toBe("");
    expect(s.stdout.trim()).toMatch(/^[0-9a-f-]{36}$/);
    const file = join(mkdtempSync(join(tmpdir(), "ctl-config-")), "app.conf");
    writeFileSync(file, "listen 80;\n");
    expect((await ctl(["config", "create", "app.conf", file], env)).code).toBe(0);
    expect((await ctl(["secret", "ls"], env)).stdout).toMatch(/^ID\s+NAME\s+SIZE\s+CREATED\n\S+\s+pw\s+16\s/);
    expect((await ctl(["config", "ls", "-q"], env)).stdout.trim()).toBe("app.conf");
  });

  it("inspects a secret without its value and a config with it", async () => {
    const secret = await ctl(["secret", "inspect", "pw"], env);
    expect(JSON.parse(secret.stdout)[0]).toMatchObject({ name: "pw", size: VALUE.length });
    expect(secret.stdout).not.toContain(VALUE);
    expect(JSON.parse((await ctl(["config", "inspect", "app.conf"], env)).stdout)[0].data).toBe("listen 80;\n");
    expect((await ctl(["config", "inspect", "--raw", "app.conf"], env)).stdout).toBe("listen 80;\n");
  });

  it("refuses a bad name before sending anything, and a missing file", async () => {
    const bad = await withStdin(["secret", "create", "p w", "-"], "x");
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/^ctl: name: invalid secret name "p w"/);
    const missing = await ctl(["secret", "create", "pw2", "/nonexistent/file"], env);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/cannot read \/nonexistent\/file/);
  });

  it("rotates the key and removes values", async () => {
    const r = await ctl(["secret", "rotate-key"], env);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/^2 values re-encrypted with key [0-9a-f]{16}/);
    expect((await ctl(["secret", "rm", "pw"], env)).stdout.trim()).toBe("pw");
    expect((await ctl(["config", "rm", "app.conf"], env)).code).toBe(0);
    const gone = await ctl(["secret", "inspect", "pw"], env);
    expect(gone.code).toBe(1);
    expect(gone.stderr).toContain("secret not found: pw");
  });
});
