// `ctl service update --rebalance`, end to end on three netns machines: 6 replicas spread
// 2/2/2; one machine drained (3/3/0) and made active again, where the tasks stay (as in swarm);
// the rebalance moves the two surplus tasks back to it, one batch at a time, never more than one
// batch below the replicas asked for, and leaves the four others running. Traffic stays on
// loopback and on a bridge in 198.19.121.0/24 that this test creates.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startNetnsLab, type NetnsLab } from "./lab";
import { removeLeftovers, run } from "./support";
import { until as pollUntil } from "../support/until";
import { testBridge } from "../support/leftovers";

const root = process.getuid?.() === 0;
const tag = process.pid.toString(36);
const BRIDGE = testBridge("flrb");
const GATEWAY = "198.19.121.1";
const MACHINES = [`rba-${tag}`, `rbb-${tag}`, `rbc-${tag}`];
const [A, B, C] = MACHINES;

interface TaskView {
  id: string;
  nodeHostname: string | null;
  containerId: string | null;
  state: string;
}

describe.skipIf(!root)("rebalancing a service across three netns machines", () => {
  const base = mkdtempSync(join(tmpdir(), "flotilla-e2e-rebalance-"));
  const regPort = 45000 + (process.pid % 4000);
  let lab: NetnsLab;
  let image: string;
  const web = `web-${tag}`;

  const ctl = (args: string[]) => lab.ctl(args);
  const json = <T>(path: string) => lab.json<T>(path);
  const until = <T>(what: string, probe: () => Promise<T | undefined | false>, ms = 90_000) => pollUntil(what, probe, ms);

  const running = async () =>
    (await json<TaskView[]>(`/api/v1/tasks?service=${web}&desired-state=running`)).filter((t) => t.state === "RUNNING");
  const perMachine = (tasks: TaskView[]) => {
    const counts: Record<string, number> = {};
    for (const t of tasks) counts[t.nodeHostname!] = (counts[t.nodeHostname!] ?? 0) + 1;
    return counts;
  };
  const containersOn = async (m: string): Promise<string[]> => {
    const ps = await run("docker", ["ps", "-q", "--no-trunc", "--filter", "label=flotilla.service.id"], await lab.dockerEnv(m));
    expect(ps.code, ps.stderr).toBe(0);
    return ps.stdout.split("\n").filter(Boolean);
  };

  beforeAll(async () => {
    lab = await startNetnsLab({ base, gateway: GATEWAY, bridge: BRIDGE, apiPort: regPort + 1, regPort });
    image = lab.image;
    for (const m of MACHINES) {
      const r = await lab.createMachine(m, BRIDGE);
      expect(r.code, r.stderr).toBe(0);
    }
    await until("three machines to join as ready nodes", async () => {
      const list = await json<{ hostname: string; status: string }[]>("/api/v1/nodes");
      return list.filter((n) => MACHINES.includes(n.hostname) && n.status === "ready").length === 3;
    });
  }, 600_000);

  afterAll(async () => {
    await lab?.stop(MACHINES);
    removeLeftovers(MACHINES, BRIDGE);
    rmSync(base, { recursive: true, force: true });
  });

  it("restores 2/2/2 after a drained machine returns, moving only the surplus", { timeout: 400_000 }, async () => {
    const r = await ctl(["service", "create", "--timeout", "120s", "--name", web, "--replicas", "6", image, "sleep", "3600"]);
    expect(r.code, r.stderr).toBe(0);
    expect(perMachine(await running())).toEqual({ [A]: 2, [B]: 2, [C]: 2 });

    expect((await ctl(["node", "update", "--availability", "drain", C])).code).toBe(0);
    await until("all 6 on the two active machines", async () => {
      const tasks = await running();
      return tasks.length === 6 && tasks.every((t) => t.nodeHostname !== C);
    });
    await until(`no containers left on ${C}`, async () => (await containersOn(C)).length === 0);
    expect((await ctl(["node", "update", "--availability", "active", C])).code).toBe(0);
    const before = await running();
    expect(perMachine(before)).toEqual({ [A]: 3, [B]: 3 });

    // Watch the running count while the rebalance works: one batch (parallelism 1) at most below 6.
    let lowest = 6;
    let watching = true;
    const watch = (async () => {
      while (watching) {
        lowest = Math.min(lowest, (await running()).length);
        await new Promise((res) => setTimeout(res, 100));
      }
    })();
    const rb = await ctl(["service", "update", "--timeout", "180s", "--rebalance", web]);
    watching = false;
    await watch;
    expect(rb.code, rb.stderr).toBe(0);
    // ctl returns once the tasks converged; the update completes when the last one's monitor period ends.
    const s = await until("the rebalance to complete", async () => {
      const svc = await json<{ updateState: { status: string; message: string; moving: string[] } }>(`/api/v1/services/${web}`);
      return svc.updateState.status === "completed" && svc;
    });
    expect(s.updateState.message).toBe("rebalance completed");
    expect(s.updateState.moving).toHaveLength(2);
    const after = await running();
    expect(perMachine(after)).toEqual({ [A]: 2, [B]: 2, [C]: 2 });
    expect(lowest).toBeGreaterThanOrEqual(5);
    // The four tasks not moved are the same tasks, in the same containers.
    const kept = before.filter((t) => !s.updateState.moving.includes(t.id));
    expect(kept).toHaveLength(4);
    for (const t of kept) expect(after.find((x) => x.id === t.id)?.containerId).toBe(t.containerId);
    await until(`${C}'s containers to be exactly its two tasks`, async () => {
      const ids = (await containersOn(C)).sort();
      const want = after.filter((t) => t.nodeHostname === C).map((t) => t.containerId!);
      return ids.length === 2 && ids.every((id) => want.includes(id));
    });
  });
});
