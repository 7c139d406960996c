// The control plane's launch batch (POST /flotilla/containers/launch) on a real agent: containers
// created and started in one request, each reported as dispatch needs it; a name already taken
// is that container (a retried launch starts nothing new); a bad launch fails alone; a bad
// request changes nothing.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startRegistry, type TestRegistry } from "../../test/support/registry";
import { MAX_LAUNCHES } from "../src/api/launch.routes";
import { dockerOk, HAS_DOCKER_CLI, IS_ROOT, rawRequest, startTestAgent, stopTestAgent, type TestAgent } from "./docker-helpers";

type Result = { Name: string; Id?: string; Health?: string; Status?: number; Message?: string };

describe.skipIf(!IS_ROOT || !HAS_DOCKER_CLI)("launch batches on a real agent", () => {
  let registry: TestRegistry;
  let agent: TestAgent;
  let image: string;

  beforeAll(async () => {
    registry = await startRegistry();
    image = await registry.pushBusybox();
    agent = await startTestAgent({ insecureRegistries: [registry.host] });
    await dockerOk(agent.env, ["pull", image]);
  }, 120_000);
  afterAll(async () => {
    await stopTestAgent(agent);
    await registry?.stop();
  });

  const launch = async (launches: unknown) => {
    const r = await rawRequest(agent.socket, "POST", "/v1.41/flotilla/containers/launch", JSON.stringify({ Launches: launches }), {
      "content-type": "application/json",
    });
    return { status: r.status, body: JSON.parse(r.body) as { Results?: Result[]; message?: string } };
  };
  const sleeper = (extra: Record<string, unknown> = {}) => ({ Image: image, Cmd: ["sleep", "300"], Labels: { batch: "yes" }, ...extra });
  const count = () => agent.handle.containers.all().length;

  it("creates and starts every container of the request; one that cannot be created fails alone", async () => {
    const { status, body } = await launch([
      { Name: "lb-a", Config: sleeper() },
      { Name: "lb-missing", Config: { Image: "nope/missing:1" } },
      { Name: "lb-b", Config: sleeper() },
    ]);
    expect(status).toBe(200);
    const [a, missing, b] = body.Results!;
    expect(a).toMatchObject({ Name: "lb-a", Id: expect.stringMatching(/^[0-9a-f]{64}$/) });
    expect(b).toMatchObject({ Name: "lb-b", Id: expect.stringMatching(/^[0-9a-f]{64}$/) });
    expect(missing).toMatchObject({ Name: "lb-missing", Status: 404, Message: expect.stringMatching(/no such image/i) });
    for (const r of [a, b]) expect(agent.handle.containers.get(r.Id!).state.status).toBe("running");
    expect(agent.handle.containers.all().some((c) => c.name.includes("lb-missing"))).toBe(false);
  });

  it("reports the container already named so, started, when a launch is sent again", async () => {
    const before = count();
    const first = (await launch([{ Name: "lb-again", Config: sleeper() }])).body.Results![0];
    await agent.handle.containers.stop(first.Id!, 1);
    const again = await launch([
      { Name: "lb-again", Config: sleeper() },
      { Name: "lb-a", Config: sleeper() },
    ]);
    expect(again.body.Results!.map((r) => r.Id)).toEqual([first.Id, agent.handle.containers.get("lb-a").id]);
    expect(agent.handle.containers.get(first.Id!).state.status).toBe("running");
    expect(count()).toBe(before + 1);
  });

  it("reports a health check's status right after the start", async () => {
    const { body } = await launch([
      { Name: "lb-health", Config: sleeper({ Healthcheck: { Test: ["CMD-SHELL", "sleep 60"], Interval: 30e9, Timeout: 90e9 } }) },
    ]);
    expect(body.Results![0]).toMatchObject({ Name: "lb-health", Health: "starting" });
  });

  it("refuses a malformed request and creates nothing", async () => {
    const before = count();
    const cases: [unknown, RegExp][] = [
      ["not a list", /Launches must be an array/],
      [[{ Name: "", Config: sleeper() }], /Name must be a container name/],
      [[{ Name: "lb-x", Config: [] }], /Config must be a container create body/],
      [
        [
          { Name: "lb-dup", Config: sleeper() },
          { Name: "lb-dup", Config: sleeper() },
        ],
        /appears twice/,
      ],
      [Array.from({ length: MAX_LAUNCHES + 1 }, (_, i) => ({ Name: `lb-many-${i}`, Config: sleeper() })), /at most 256 launches/],
    ];
    for (const [launches, message] of cases) {
      const r = await launch(launches);
      expect(r.status).toBe(400);
      expect(r.body.message).toMatch(message);
    }
    expect(count()).toBe(before);
  });
});
