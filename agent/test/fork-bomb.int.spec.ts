// Finding 7 of issue 11: with no default pids limit, a fork bomb in one container could starve
// the agent until its node went down. A real fork bomb, run through the docker CLI: it hits the
// container's default limit while the agent and the host keep working, and is killed cleanly.
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startRegistry, type TestRegistry } from "../../test/support/registry";
import {
  docker,
  dockerOk,
  HAS_DOCKER_CLI,
  IS_ROOT,
  leftovers,
  startTestAgent,
  stopTestAgent,
  type TestAgent,
  waitFor,
} from "./docker-helpers";
import { cgroupDirs } from "./support/shim";

const pidsFile = (id: string, file: string) => {
  const dirs = cgroupDirs(id);
  return join(dirs.find((d) => d.includes("/pids/")) ?? dirs[0]!, file);
};

describe.skipIf(!IS_ROOT || !HAS_DOCKER_CLI)("a fork bomb in a container", () => {
  let registry: TestRegistry;
  let agent: TestAgent;
  let env: NodeJS.ProcessEnv;
  let image: string;

  beforeAll(async () => {
    registry = await startRegistry();
    image = await registry.pushBusybox();
    agent = await startTestAgent({ dir: fs.mkdtempSync("/tmp/flotilla-s11-forkbomb-"), insecureRegistries: [registry.host] });
    env = agent.env;
    await dockerOk(env, ["pull", image]);
  });

  afterAll(async () => {
    await stopTestAgent(agent);
    await registry?.stop();
  });

  it("runs every container under a default pids limit; --pids-limit changes it", async () => {
    const id = await dockerOk(env, ["run", "-d", image, "sleep", "60"]);
    expect(fs.readFileSync(pidsFile(id, "pids.max"), "utf8").trim()).toBe("1024");
    await dockerOk(env, ["rm", "-f", id]);
    const own = await dockerOk(env, ["run", "-d", "--pids-limit", "64", image, "sleep", "60"]);
    expect(fs.readFileSync(pidsFile(own, "pids.max"), "utf8").trim()).toBe("64");
    await dockerOk(env, ["rm", "-f", own]);
  });

  it("is contained: the limit is hit, the agent and the host still fork and answer, rm -f ends it", async () => {
    const id = await dockerOk(env, ["run", "-d", image, "sh", "-c", "bomb() { bomb | bomb & }; bomb; sleep 60"]);
    // The kernel counts forks refused at the limit in pids.events.
    await waitFor(
      "the fork bomb to hit the pids limit",
      () => {
        const events = fs.readFileSync(pidsFile(id, "pids.events"), "utf8");
        return Number(/max (\d+)/.exec(events)?.[1] ?? 0) > 0;
      },
      60_000,
    );
    expect(Number(fs.readFileSync(pidsFile(id, "pids.current"), "utf8"))).toBeLessThanOrEqual(1024);
    expect(spawnSync("true").status).toBe(0);
    expect(await dockerOk(env, ["ps", "-q", "--no-trunc"])).toContain(id);
    const rm = await docker(env, ["rm", "-f", id], 120_000);
    expect(rm.code, rm.stderr).toBe(0);
    expect(leftovers(agent.root, [id])).toEqual([]);
  });
});
