// Reconcile never waits on an agent: with one node's engine accepting connections and never
// answering (a blackholed agent), changes to a service keep being reconciled and its tasks on
// the other node keep starting, while the dispatch to the silent agent is still waiting. When the
// engine client gives up, the launch it sent is unanswered, not failed: the task stays claimed
// (its container may exist) and no second container is started for its slot.
import { createConnection, createServer, type Server, type Socket } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ENGINE_TIMEOUT_MS } from "../src/dispatch/engine-clients";
import type { TestApi } from "./support";
import type { SimAgent } from "../../../test/support/sim-agent";
import { converged, live, runningContainers, send, simNodes, startFastApi, tasksOf, until } from "./services-support";

/** A TCP front for an agent's engine that forwards, or holds every new connection unanswered. */
class Blackhole {
  private server?: Server;
  private holding = false;
  readonly held = new Set<Socket>();
  private readonly forwarded = new Set<Socket>();
  url = "";

  async start(targetPort: number): Promise<this> {
    this.server = createServer((socket) => {
      socket.on("error", () => undefined);
      if (this.holding) {
        this.held.add(socket);
        socket.on("close", () => this.held.delete(socket));
        return;
      }
      const upstream = createConnection(targetPort, "127.0.0.1");
      upstream.on("error", () => socket.destroy());
      this.forwarded.add(socket);
      socket.on("close", () => {
        this.forwarded.delete(socket);
        upstream.destroy();
      });
      socket.pipe(upstream).pipe(socket);
    });
    await new Promise<void>((r) => this.server!.listen(0, "127.0.0.1", r));
    this.url = `http://127.0.0.1:${(this.server.address() as { port: number }).port}`;
    return this;
  }

  /** From now on connections are accepted and never answered; open ones are cut (clients reconnect). */
  hold(): void {
    this.holding = true;
    for (const s of this.forwarded) s.destroy();
  }

  /** Forwards new connections again; held ones are cut. */
  release(): void {
    this.holding = false;
    for (const s of this.held) s.destroy();
  }

  async stop(): Promise<void> {
    for (const s of [...this.held, ...this.forwarded]) s.destroy();
    await new Promise((r) => this.server?.close(r));
  }
}

describe("dispatch to a blackholed agent", () => {
  let api: TestApi;
  let agents: SimAgent[];
  let hole: Blackhole;
  beforeAll(async () => {
    // A short sweep: a claim gone stale is launched again soon after.
    api = await startFastApi({ FLOTILLA_SWEEP_INTERVAL_MS: "2000" });
    agents = await simNodes(api, 2);
    hole = await new Blackhole().start(Number(new URL(agents[1].url).port));
    // The second node's engine is reached through the blackhole (its heartbeats, with an admin
    // token and no machine, name the URL).
    agents[1].url = hole.url;
    await agents[1].heartbeat();
  });
  afterAll(async () => {
    await Promise.all((agents ?? []).map((a) => a.stop()));
    await hole?.stop();
    await api?.stop();
  });

  it("does not hold up reconciles of the service nor its tasks on the other node", async () => {
    const [healthy, silent] = agents.map((a) => a.opts.hostname);
    await send(api, "POST", "/api/v1/services", { name: "wide", image: "busybox", replicas: 2 });
    await converged(api, "wide", 2);
    hole.hold();

    await send(api, "PATCH", "/api/v1/services/wide", { replicas: 4 });
    await until("a launch on the silent node to be waiting for its agent", async () => hole.held.size > 0);
    await send(api, "PATCH", "/api/v1/services/wide", { replicas: 6 });
    // Both scales reconciled and the healthy node's share running, while the silent node's new
    // tasks still wait on its dispatch, which waits for an answer.
    const tasks = await until("the healthy node's tasks of both scales to run", async () => {
      const l = live(await tasksOf(api, "wide"));
      const mine = l.filter((t) => t.nodeHostname === healthy);
      return l.length === 6 && mine.length === 3 && mine.every((t) => t.state === "RUNNING") ? l : undefined;
    });
    expect(hole.held.size).toBeGreaterThan(0);
    const waiting = tasks.filter((t) => t.nodeHostname === silent && t.state !== "RUNNING");
    // One claimed by the job waiting on the agent, the other queued behind it for that node.
    expect(waiting.map((t) => t.state).sort()).toEqual(["ACCEPTED", "ASSIGNED"]);
  });

  it(
    "keeps a launch the agent never answered claimed, not rejected, and starts one container per slot once it answers",
    { timeout: 150_000 },
    async () => {
      const [, silent] = agents.map((a) => a.opts.hostname);
      // Past the engine client's timeout for the launch held since the first test.
      await new Promise((r) => setTimeout(r, ENGINE_TIMEOUT_MS + 3000));
      const after = await tasksOf(api, "wide");
      expect(after.filter((t) => t.state === "REJECTED")).toEqual([]);
      // The two launches on the silent node wait, claimed or queued, for an answer.
      const waiting = live(after).filter((t) => t.nodeHostname === silent && t.state !== "RUNNING");
      expect(waiting).toHaveLength(2);
      for (const t of waiting) expect(["ACCEPTED", "ASSIGNED"]).toContain(t.state);

      hole.release();
      const running = await converged(api, "wide", 6, 120_000);
      const serviceId = running[0].serviceId;
      const containers = runningContainers(agents).filter((c) => c.serviceId === serviceId);
      expect(containers.map((c) => c.taskId).sort()).toEqual(running.map((t) => t.id).sort());
      expect((await tasksOf(api, "wide")).filter((t) => t.state === "REJECTED")).toEqual([]);
    },
  );
});
