// `ctl stack` against the real API (simulated agents): deploy a compose file with its .env and
// env_file read beside it and only the named variables of the environment sent; redeploy after
// a change; ls/services/ps; a bad file refused naming the path; rm.
import * as fs from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { TestApi } from "../../api/test/support";
import { converged, simNodes, startFastApi } from "../../api/test/services-support";
import type { SimAgent } from "../../../test/support/sim-agent";
import { ctl } from "./run-ctl";

describe("ctl stack against sim agents", () => {
  let api: TestApi;
  let agents: SimAgent[];
  let env: Record<string, string>;
  let dir: string;
  beforeAll(async () => {
    api = await startFastApi();
    agents = await simNodes(api, 2, { prefix: "ctlstk" });
    env = { FLOTILLA_CONFIG_DIR: api.config.configDir };
    dir = fs.mkdtempSync(join(tmpdir(), "flotilla-stack-"));
    fs.writeFileSync(join(dir, ".env"), "TAG=1\n");
    fs.writeFileSync(join(dir, "app.env"), "FROM_FILE=yes\n");
    fs.writeFileSync(
      join(dir, "compose.yml"),
      "services:\n  web:\n    image: registry.test/web:${TAG}\n    environment: [GREETING]\n    env_file: app.env\n    deploy: { replicas: 2 }\n  backend:\n    image: registry.test/backend:1\n",
    );
  });
  afterAll(async () => {
    await Promise.all((agents ?? []).map((a) => a.stop()));
    await api?.stop();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it("deploys a compose file as a stack and lists it", async () => {
    const r = await ctl(["stack", "deploy", "-c", join(dir, "compose.yml"), "app"], { ...env, GREETING: "hello", UNRELATED_SECRET: "x" });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain("Creating service app_backend");
    expect(r.stderr).toContain("Creating service app_web");
    // As docker stack deploy: services that name no network share the stack's default one.
    expect(r.stderr).toContain("Creating network app_default");
    await converged(api, "app_web", 2);
    const web = JSON.parse((await ctl(["service", "inspect", "app_web"], env)).stdout)[0];
    expect(web.spec).toMatchObject({
      image: "registry.test/web:1",
      env: { GREETING: "hello", FROM_FILE: "yes" },
      labels: { "com.docker.stack.namespace": "app" },
    });
    expect(JSON.stringify(web.spec)).not.toContain("UNRELATED_SECRET");
    expect((await ctl(["stack", "ls"], env)).stdout).toMatch(/^NAME\s+SERVICES\napp\s+2\n$/);
    expect((await ctl(["stack", "services", "app"], env)).stdout).toMatch(/app_backend\s+replicated/);
    const ps = await ctl(["stack", "ps", "app", "--json"], env);
    expect(JSON.parse(ps.stdout).length).toBeGreaterThanOrEqual(3);
  });

  it("redeploys only what changed, and refuses a bad file by path", async () => {
    fs.writeFileSync(join(dir, ".env"), "TAG=2\n");
    const r = await ctl(["stack", "deploy", "-c", join(dir, "compose.yml"), "app", "--json"], { ...env, GREETING: "hello" });
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ created: [], updated: ["app_web"], unchanged: ["app_backend"] });
    fs.writeFileSync(join(dir, "bad.yml"), "services:\n  web:\n    image: x\n    ports: ['80:80:80:80']\n    wat: 1\n");
    const bad = await ctl(["stack", "deploy", "-c", join(dir, "bad.yml"), "other"], env);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain("services.web.wat: unknown key");
    expect((await ctl(["stack", "ls", "--json"], env)).stdout).not.toContain("other");
    const missing = await ctl(["stack", "deploy", "-c", join(dir, "nope.yml"), "other"], env);
    expect(missing.stderr).toContain("no such file");
  });

  it("removes a stack", async () => {
    const r = await ctl(["stack", "rm", "app"], env);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain("Removing service app_web");
    expect(r.stderr).toContain("Removing network app_default");
    expect(JSON.parse((await ctl(["stack", "ls", "--json"], env)).stdout)).toEqual([]);
    const again = await ctl(["stack", "rm", "app"], env);
    expect(again.code).toBe(1);
    expect(again.stderr).toContain("stack app not found");
  });
});
