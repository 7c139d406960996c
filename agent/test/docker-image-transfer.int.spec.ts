// Images between machines with the real docker CLI 28: push of a built image through an
// authenticating registry (refused without login, docker login checked against the registry),
// pulled by a second agent and run there; save → rmi → load → run; an OCI layout made by skopeo
// loaded; zstd layers pulled; history, image prune and system df.
import { execFile, execFileSync } from "node:child_process";
import { promisify } from "node:util";
import * as fs from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { busyboxLayout, FIXTURE_TAGS } from "../../test/support/busybox-image";
import { startAuthProxy, startRegistry, type AuthProxy, type TestRegistry } from "../../test/support/registry";
import { docker, dockerOk, HAS_DOCKER_CLI, IS_ROOT, startTestAgent, type TestAgent } from "./docker-helpers";

const run = promisify(execFile);
let registry: TestRegistry;
let proxy: AuthProxy;
let a: TestAgent;
let b: TestAgent;
let base: string;
let dir: string;

describe.skipIf(!IS_ROOT || !HAS_DOCKER_CLI)("push, login, save/load between agents", () => {
  beforeAll(async () => {
    registry = await startRegistry();
    proxy = await startAuthProxy(registry, { scheme: "basic", username: "ci", password: "s3cret" });
    base = await registry.pushBusybox("base/busybox:1");
    dir = fs.mkdtempSync("/tmp/flotilla-dxfer-");
    const insecureRegistries = [registry.host, proxy.host];
    a = await startTestAgent({ dir: join(dir, "a"), insecureRegistries });
    b = await startTestAgent({ dir: join(dir, "b"), insecureRegistries });
    const ctx = join(dir, "ctx");
    fs.mkdirSync(ctx);
    fs.writeFileSync(join(ctx, "Dockerfile"), `FROM ${base}\nCOPY msg.txt /msg.txt\nRUN echo built >> /msg.txt\nCMD ["cat", "/msg.txt"]\n`);
    fs.writeFileSync(join(ctx, "msg.txt"), "carried across\n");
    const r = await docker(a.env, ["build", "-t", `${proxy.host}/team/app:v1`, "-t", "app:v1", ctx], 120_000);
    expect(r.code, r.stderr).toBe(0);
  });

  afterAll(async () => {
    for (const t of [a, b]) {
      if (!t) continue;
      await t.handle.close();
    }
    await proxy?.stop();
    await registry?.stop();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it("refuses a push without credentials in the registry's words", async () => {
    const r = await docker(a.env, ["push", `${proxy.host}/team/app:v1`]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("unauthorized: authentication required");
  });

  it("docker login checks the credentials against the registry", async () => {
    const wrong = await docker(a.env, ["login", proxy.host, "-u", "ci", "-p", "wrong"]);
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toContain(`login attempt to http://${proxy.host}/v2/ failed with status: 401 Unauthorized`);
    const ok = await docker(a.env, ["login", proxy.host, "-u", "ci", "-p", "s3cret"]);
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stdout).toContain("Login Succeeded");
  });

  it("pushes the built image, then finds its layers already there", async () => {
    const r = await docker(a.env, ["push", `${proxy.host}/team/app:v1`]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`The push refers to repository [${proxy.host}/team/app]`);
    expect(r.stdout).toContain("Pushed");
    expect(r.stdout).toMatch(/v1: digest: sha256:[0-9a-f]{64} size: \d+/);
    const again = await docker(a.env, ["push", `${proxy.host}/team/app:v1`]);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout).toContain("Layer already exists");
    expect(again.stdout).not.toContain("Pushed");
    // The registry really holds it: skopeo reads the manifest back (asynchronously: the auth
    // proxy it talks to runs in this process).
    const inspect = JSON.parse(
      (await run("skopeo", ["inspect", "--tls-verify=false", "--creds", "ci:s3cret", `docker://${proxy.host}/team/app:v1`])).stdout,
    );
    expect(inspect.Layers).toHaveLength(3);
  });

  it("a second agent pulls the pushed image and runs it", async () => {
    expect((await docker(b.env, ["login", proxy.host, "-u", "ci", "-p", "s3cret"])).code).toBe(0);
    const pull = await docker(b.env, ["pull", `${proxy.host}/team/app:v1`]);
    expect(pull.code, pull.stderr).toBe(0);
    expect(await dockerOk(b.env, ["run", "--rm", `${proxy.host}/team/app:v1`])).toBe("carried across\nbuilt");
    const idA = await dockerOk(a.env, ["image", "inspect", "-f", "{{.Id}}", "app:v1"]);
    const idB = await dockerOk(b.env, ["image", "inspect", "-f", "{{.Id}}", `${proxy.host}/team/app:v1`]);
    expect(idB).toBe(idA);
  });

  it("save → rmi → load → run keeps the image and its ID", async () => {
    const file = join(dir, "app.tar");
    const id = await dockerOk(a.env, ["image", "inspect", "-f", "{{.Id}}", "app:v1"]);
    await dockerOk(a.env, ["save", "-o", file, "app:v1"]);
    const names = execFileSync("tar", ["-tf", file], { encoding: "utf8" }).split("\n");
    expect(names).toEqual(
      expect.arrayContaining(["manifest.json", "index.json", "oci-layout", "repositories", `blobs/sha256/${id.slice(7)}`]),
    );
    await dockerOk(a.env, ["rmi", "app:v1", `${proxy.host}/team/app:v1`]);
    expect(await dockerOk(a.env, ["images", "-q", "app"])).toBe("");
    const load = await dockerOk(a.env, ["load", "-i", file]);
    expect(load).toContain("Loaded image: app:v1");
    expect(await dockerOk(a.env, ["image", "inspect", "-f", "{{.Id}}", "app:v1"])).toBe(id);
    expect(await dockerOk(a.env, ["run", "--rm", "app:v1"])).toBe("carried across\nbuilt");
  });

  it("loads an OCI layout archive made by skopeo", async () => {
    const file = join(dir, "oci.tar");
    execFileSync("skopeo", [
      "copy",
      "--insecure-policy",
      "--quiet",
      `oci:${busyboxLayout()}:${FIXTURE_TAGS.busybox}`,
      `oci-archive:${file}:example.test/oci/busybox:1`,
    ]);
    const load = await dockerOk(b.env, ["load", "-i", file]);
    expect(load).toContain("Loaded image: example.test/oci/busybox:1");
    expect(await dockerOk(b.env, ["run", "--rm", "example.test/oci/busybox:1", "echo", "from oci"])).toBe("from oci");
  });

  it("pulls an image with zstd-compressed layers", async () => {
    const ref = `${registry.host}/zstd/busybox:1`;
    await run("skopeo", [
      "copy",
      "--insecure-policy",
      "--quiet",
      "--dest-tls-verify=false",
      "--dest-compress-format",
      "zstd",
      "--dest-compress-level",
      "3",
      `oci:${busyboxLayout()}:${FIXTURE_TAGS.busybox}`,
      `docker://${ref}`,
    ]);
    const pull = await docker(b.env, ["pull", ref]);
    expect(pull.code, pull.stderr).toBe(0);
    expect(await dockerOk(b.env, ["run", "--rm", ref, "echo", "zstd ok"])).toBe("zstd ok");
  });

  it("history, image prune and system df", async () => {
    const history = await dockerOk(a.env, ["history", "--no-trunc", "--format", "{{.ID}}|{{.CreatedBy}}|{{.Size}}", "app:v1"]);
    const rows = history.split("\n");
    expect(rows[0]).toMatch(/^sha256:[0-9a-f]{64}\|\/bin\/sh -c #\(nop\) {2}CMD \["cat","\/msg.txt"\]\|0B$/);
    expect(rows[1]).toMatch(/\|\/bin\/sh -c echo built >> \/msg\.txt\|/);
    // A dangling image: build, then move the tag away.
    const ctx = join(dir, "dangle");
    fs.mkdirSync(ctx);
    fs.writeFileSync(join(ctx, "Dockerfile"), `FROM ${base}\nLABEL version=1\n`);
    await dockerOk(a.env, ["build", "-t", "dangle:x", ctx], 60_000);
    const oldId = await dockerOk(a.env, ["image", "inspect", "-f", "{{.Id}}", "dangle:x"]);
    fs.writeFileSync(join(ctx, "Dockerfile"), `FROM ${base}\nLABEL version=2\n`);
    await dockerOk(a.env, ["build", "-t", "dangle:x", ctx], 60_000);
    expect(await dockerOk(a.env, ["images", "-q", "--filter", "dangling=true", "--no-trunc"])).toContain(oldId);
    const prune = await dockerOk(a.env, ["image", "prune", "-f"]);
    expect(prune).toContain(`deleted: ${oldId}`);
    expect(prune).toMatch(/Total reclaimed space: /);
    expect(await dockerOk(a.env, ["images", "-q", "--filter", "dangling=true"])).toBe("");
    const df = await dockerOk(a.env, ["system", "df", "--format", "{{.Type}} {{.TotalCount}}"]);
    expect(df).toMatch(/^Images \d+$/m);
    expect(df).toMatch(/^Local Volumes \d+$/m);
  });
});
