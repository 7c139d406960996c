// Finding 8 of issue 11: the `local` netns machine shares the host's filesystem with the control
// plane, so a container could bind-mount the admin token and the CA key. The provisioner gives
// such an agent --deny-bind with the control plane's paths; here the real docker CLI tries every
// way in (the dir, a file in it, a parent, a symlink, a source swapped after create).
import * as fs from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startRegistry, type TestRegistry } from "../../test/support/registry";
import { docker, dockerOk, HAS_DOCKER_CLI, IS_ROOT, startTestAgent, type TestAgent } from "./docker-helpers";

describe.skipIf(!IS_ROOT || !HAS_DOCKER_CLI)("bind mounts on a machine that shares the control plane's host", () => {
  let registry: TestRegistry;
  let agent: TestAgent;
  let env: NodeJS.ProcessEnv;
  let image: string;
  let base: string;
  let controlPlane: string;

  beforeAll(async () => {
    registry = await startRegistry();
    image = await registry.pushBusybox();
    base = fs.mkdtempSync("/tmp/flotilla-s11-binds-");
    controlPlane = join(base, "cp", "config");
    fs.mkdirSync(controlPlane, { recursive: true, mode: 0o700 });
    fs.writeFileSync(join(controlPlane, "config.json"), '{"token":"flt_admin_secret"}\n', { mode: 0o600 });
    agent = await startTestAgent({ dir: join(base, "agent"), insecureRegistries: [registry.host], denyBinds: [controlPlane] });
    env = agent.env;
    await dockerOk(env, ["pull", image]);
  });

  afterAll(async () => {
    if (agent) {
      for (const c of agent.handle.containers.all()) await agent.handle.containers.remove(c.id, { force: true }).catch(() => {});
      await agent.handle.close();
    }
    await registry?.stop();
    if (base) fs.rmSync(base, { recursive: true, force: true });
  });

  const refused = (source: string) =>
    `bind source ${source} is refused on this machine: it shares the host with the Flotilla control plane, and ${controlPlane} holds its keys, tokens or data`;

  it("refuses the control plane's config dir, a file in it and a dir above it", async () => {
    for (const [source, shown] of [
      [controlPlane, controlPlane],
      [join(controlPlane, "config.json"), join(controlPlane, "config.json")],
      [join(base, "cp"), join(base, "cp")],
      ["/", "/"],
    ]) {
      const r = await docker(env, ["run", "--rm", "-v", `${source}:/loot`, image, "cat", "/loot/config.json"]);
      expect(r.code, `${source}: ${r.stdout}`).toBe(125);
      expect(r.stderr).toContain(refused(shown!));
      expect(r.stdout).not.toContain("flt_admin_secret");
    }
    const m = await docker(env, ["run", "--rm", "--mount", `type=bind,source=${controlPlane},target=/loot`, image, "true"]);
    expect(m.code).toBe(125);
    expect(m.stderr).toContain(refused(controlPlane));
    expect(agent.handle.containers.all()).toEqual([]);
  });

  it("resolves symlinks: a link to the config dir is refused too", async () => {
    const link = join(base, "innocent");
    fs.symlinkSync(controlPlane, link);
    const r = await docker(env, ["create", "-v", `${link}:/loot`, image, "true"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(refused(`${link} (${controlPlane})`));
  });

  it("checks again at start: a source swapped for a symlink after create is refused", async () => {
    const src = join(base, "data");
    fs.mkdirSync(src);
    const id = await dockerOk(env, ["create", "-v", `${src}:/data`, image, "cat", "/data/config.json"]);
    fs.rmSync(src, { recursive: true });
    fs.symlinkSync(controlPlane, src);
    const r = await docker(env, ["start", "-a", id]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain(refused(`${src} (${controlPlane})`));
    expect(r.stdout).not.toContain("flt_admin_secret");
    await dockerOk(env, ["rm", "-f", id]);
  });

  it("still binds anything else", async () => {
    const ok = join(base, "shared");
    fs.mkdirSync(ok);
    fs.writeFileSync(join(ok, "hello"), "hi\n");
    expect(await dockerOk(env, ["run", "--rm", "-v", `${ok}:/d:ro`, image, "cat", "/d/hello"])).toBe("hi");
    // A file with -v is bound as it is (only a missing source becomes a directory).
    expect(await dockerOk(env, ["run", "--rm", "-v", `${join(ok, "hello")}:/hello:ro`, image, "cat", "/hello"])).toBe("hi");
  });
});
