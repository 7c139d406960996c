// Attack: an agent token's heartbeat names another machine's engine URL. The control plane must
// keep dialling the machine's own address for dispatch and stray removal; the URL a node's
// heartbeat names is taken only from an admin token for a node without a machine (the
// simulated agents), never from an agent token.
import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PrismaService } from "../src/database/prisma.service";
import { QUEUE } from "../src/queues/queue-names";
import { QueuesService } from "../src/queues/queues.service";
import { agentTokenFor, type TestApi } from "./support";
import { SimAgent } from "../../../test/support/sim-agent";
import { getJson, send, startFastApi, until } from "./services-support";

describe("the engine URL the control plane dials", () => {
  let api: TestApi;
  let prisma: PrismaService;
  let attacker: SimAgent;

  beforeAll(async () => {
    api = await startFastApi();
    prisma = api.running.app.get(PrismaService);
    // Where a hostile heartbeat tries to send dispatch: an engine that records every call.
    attacker = await new SimAgent({ hostname: "attacker", images: ["busybox:latest"] }).start();
  });
  afterAll(async () => {
    await attacker?.stop();
    await api?.stop();
  });

  const agentToken = (machine: string) => agentTokenFor(api, machine);
  const beat = (token: string, hostname: string, containers: unknown[] = []) =>
    api.fetch("/api/v1/nodes/heartbeat", {
      method: "POST",
      token,
      body: JSON.stringify({
        hostname,
        engineUrl: attacker.url,
        resources: { nanoCpus: 4e9, memoryBytes: 8 * 1024 ** 3 },
        labels: {},
        containers,
      }),
    });

  it("an agent token cannot point dispatch or stray removal of its machine's node elsewhere", async () => {
    // The machine's agent would serve on 127.0.0.1:2376, where nothing listens here: dispatch
    // fails there, which is what the test waits for.
    await prisma.machine.create({ data: { name: "victim", driver: "generic", state: "READY", ip: "127.0.0.1" } });
    const token = await agentToken("victim");
    const keepBeating = setInterval(() => void beat(token, "victim").catch(() => undefined), 400);
    try {
      expect((await beat(token, "victim")).status).toBe(200);
      const node = await getJson<{ engineUrl: string | null }>(api, "/api/v1/nodes/victim");
      expect(node.engineUrl).toBe("https://127.0.0.1:2376");

      await send(api, "POST", "/api/v1/services", {
        name: "onvictim",
        image: "busybox",
        replicas: 1,
        placement: { constraints: ["node.hostname==victim"] },
      });
      // Dispatch tried the machine's address and failed there.
      await until("dispatch to reach the machine's address and fail", async () =>
        (await getJson<{ state: string; error: string | null }[]>(api, "/api/v1/tasks?service=onvictim")).some(
          (t) => t.state === "REJECTED",
        ),
      );
      // A stray in the report: its removal goes to the machine's address too, not the reported one.
      const stray = { id: "c".repeat(64), labels: { "flotilla.task.id": randomUUID() }, state: "running" };
      expect((await beat(token, "victim", [stray])).status).toBe(200);
      expect((await beat(token, "victim", [stray])).status).toBe(200);
      await until("the stray's removal to be tried and given up", () => removalFailed(api), 60_000);
      // Reported again, the stray is tried again (the failed job does not block it).
      expect((await beat(token, "victim", [stray])).status).toBe(200);
      await until("the stray's removal to be tried again", async () => {
        const q = api.running.app.get(QueuesService).queue(QUEUE.dispatch);
        return (await q.getJobs(["waiting", "active", "delayed"])).some((j) => j.name === "remove");
      });
      expect(attacker.calls).toEqual([]);
    } finally {
      clearInterval(keepBeating);
    }
  });

  it("a node without a machine takes its URL from an admin token's heartbeat only", async () => {
    const token = await agentToken("ghost");
    expect((await beat(token, "ghost")).status).toBe(200);
    expect((await getJson<{ engineUrl: string | null }>(api, "/api/v1/nodes/ghost")).engineUrl).toBeNull();
    expect((await beat(api.token, "sim-admin")).status).toBe(200);
    expect((await getJson<{ engineUrl: string | null }>(api, "/api/v1/nodes/sim-admin")).engineUrl).toBe(attacker.url);
  });
});

/** Whether a stray-removal job failed for good (its agent could not be reached). */
async function removalFailed(api: TestApi): Promise<boolean> {
  const q = api.running.app.get(QueuesService).queue(QUEUE.dispatch);
  return (await q.getJobs(["failed"])).some((j) => j.name === "remove");
}
