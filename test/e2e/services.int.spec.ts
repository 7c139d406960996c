// The spine, end to end, as the services issue states it: three netns machines created by ctl,
// whose agents join by heartbeat; `ctl service create --replicas 6 --publish 8080:80` spread
// 2/2/2 and answered on every machine's 8080 through the ingress mesh; scaled to 3/3/3; one host
// killed (agent, containers and namespace) and its tasks replaced within 20 s; a drain; an
// impossible reservation; a restart of the API and worker in the middle of a scale. Traffic
// stays on loopback and on a bridge in 198.19.81.0/24 that this test creates.
import { execFileSync } from "node:child_process";
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { start, type Running } from "../../apps/api/src/bootstrap";
import type { TestApi } from "../../apps/api/test/support";
import { startNetnsLab, type NetnsLab } from "./lab";
import { removeLeftovers, run } from "./support";
import { until as pollUntil } from "../support/until";
import { testBridge } from "../support/leftovers";

const root = process.getuid?.() === 0;
const tag = process.pid.toString(36);
const BRIDGE = testBridge("flsv");
const GATEWAY = "198.19.81.1";
const MACHINES = [`sva-${tag}`, `svb-${tag}`, `svc-${tag}`];
const [A, B, C] = MACHINES;
// Each task serves its container's host name (the container id's first 12 characters), so a
// reply tells which task, and so which machine, answered.
const WHOAMI = ["sh", "-c", "mkdir -p /www && hostname > /www/index.html && exec httpd -f -p 80 -h /www"];

interface TaskView {
  id: string;
  slot: number | null;
  nodeHostname: string | null;
  containerId: string | null;
  state: string;
  desiredState: string;
  message: string | null;
}

describe.skipIf(!root)("the spine: services across three netns machines, through the ingress mesh", () => {
  const base = mkdtempSync(join(tmpdir(), "flotilla-e2e-services-"));
  const regPort = 41000 + (process.pid % 9000);
  let lab: NetnsLab;
  const ips: Record<string, string> = {};
  let api: TestApi;
  let restarted: Running | undefined;
  let image: string;
  const web = `web-${tag}`;

  const ctl = (args: string[]) => lab.ctl(args);
  const json = <T>(path: string) => lab.json<T>(path);
  const until = <T>(what: string, probe: () => Promise<T | undefined | false>, ms = 90_000, last?: () => Promise<unknown>) =>
    pollUntil(what, probe, ms, last);

  const liveTasks = async () =>
    (await json<TaskView[]>(`/api/v1/tasks?service=${web}&desired-state=running`)).filter((t) => t.state === "RUNNING");
  const perMachine = (tasks: TaskView[]) => {
    const counts: Record<string, number> = {};
    for (const t of tasks) counts[t.nodeHostname!] = (counts[t.nodeHostname!] ?? 0) + 1;
    return counts;
  };
  const dockerEnv = (m: string) => lab.dockerEnv(m);
  /** The service's containers as docker sees them on the machine: running ones, by full id. */
  const containersOn = async (m: string): Promise<string[]> => {
    const ps = await run("docker", ["ps", "-q", "--no-trunc", "--filter", `label=flotilla.service.id`], await dockerEnv(m));
    expect(ps.code, ps.stderr).toBe(0);
    return ps.stdout.split("\n").filter(Boolean);
  };
  const get = async (ip: string) => {
    const res = await fetch(`http://${ip}:8080/`, { signal: AbortSignal.timeout(10_000) });
    return { status: res.status, body: (await res.text()).trim() };
  };
  /** Exactly `n` running tasks, slots 1..n each once, and as many containers on the machines. */
  const exactlyOnce = async (n: number, machines: string[]) => {
    const tasks = await liveTasks();
    expect(tasks.map((t) => t.slot).sort((a, b) => a! - b!)).toEqual(Array.from({ length: n }, (_, i) => i + 1));
    const containers = (await Promise.all(machines.map(containersOn))).flat();
    expect(containers.sort()).toEqual(tasks.map((t) => t.containerId!).sort());
    return tasks;
  };

  beforeAll(async () => {
    // Agents reach the API through its own relay on the gateway, as with `./setup.sh start`.
    lab = await startNetnsLab({ base, gateway: GATEWAY, bridge: BRIDGE, apiPort: regPort + 1, regPort });
    api = lab.api;
    image = lab.image;
  }, 180_000);

  afterAll(async () => {
    if (lab) {
      await lab.stop(MACHINES, restarted !== undefined);
      if (restarted) {
        await restarted.close();
        await api.db.drop();
      }
    }
    removeLeftovers(MACHINES, BRIDGE);
    rmSync(base, { recursive: true, force: true });
  });

  it("creates three machines whose agents join as ready nodes", { timeout: 400_000 }, async () => {
    for (const m of MACHINES) {
      const r = await lab.createMachine(m, BRIDGE);
      expect(r.code, r.stderr).toBe(0);
      ips[m] = (await ctl(["machine", "ip", m])).stdout.trim();
    }
    const nodes = await until("three machines to join as ready nodes", async () => {
      const list = await json<{ hostname: string; status: string; engineUrl: string }[]>("/api/v1/nodes");
      const ready = list.filter((n) => MACHINES.includes(n.hostname) && n.status === "ready");
      return ready.length === 3 && ready;
    });
    for (const n of nodes) expect(n.engineUrl).toBe(`https://${ips[n.hostname]}:2376`);
  });

  it("spreads 6 replicas 2/2/2 and answers on every machine's 8080, from tasks on any machine", { timeout: 200_000 }, async () => {
    const r = await ctl([
      "service",
      "create",
      "--timeout",
      "120s",
      "--name",
      web,
      "--replicas",
      "6",
      "--publish",
      "8080:80",
      image,
      ...WHOAMI,
    ]);
    expect(r.code, r.stderr).toBe(0);
    const tasks = await exactlyOnce(6, MACHINES);
    expect(perMachine(tasks)).toEqual({ [A]: 2, [B]: 2, [C]: 2 });
    const machineOf = new Map(tasks.map((t) => [t.containerId!.slice(0, 12), t.nodeHostname!]));
    // The mesh reaches every node once its table lists the six tasks; then each machine's 8080
    // answers, round-robin over all six, wherever they run.
    for (const m of MACHINES) {
      const answered = await until(`${m}:8080 to answer from all six tasks`, async () => {
        const seen = new Set<string>();
        for (let i = 0; i < 12; i++) {
          const res = await get(ips[m]);
          if (res.status !== 200) return false;
          seen.add(res.body);
        }
        return seen.size === 6 && seen;
      });
      expect(new Set([...answered].map((h) => machineOf.get(h)))).toEqual(new Set(MACHINES));
    }
    // The containers' network namespaces belong to their machine, not to the host's /run/netns.
    const hostNetns = readdirSync("/run/netns");
    for (const t of tasks) expect(hostNetns.some((n) => n.includes(t.containerId!.slice(0, 12)))).toBe(false);
  });

  it("scales to 9: 3/3/3", { timeout: 120_000 }, async () => {
    const r = await ctl(["service", "scale", `${web}=9`]);
    expect(r.code, r.stderr).toBe(0);
    expect(perMachine(await exactlyOnce(9, MACHINES))).toEqual({ [A]: 3, [B]: 3, [C]: 3 });
    expect((await ctl(["service", "ls"])).stdout).toMatch(new RegExp(`${web}\\s+replicated\\s+9/9\\s+\\S+\\s+\\*:8080->80/tcp`));
  });

  it("replaces a killed host's tasks on the two others within 20 s, none lost or doubled", { timeout: 120_000 }, async () => {
    // The host dies: every process of the machine (agent, sshd, containers) killed, its
    // network namespace deleted.
    const killedAt = Date.now();
    expect((await ctl(["machine", "kill", C])).code).toBe(0);
    execFileSync("ip", ["netns", "del", `flt-${C}`]);
    await until(
      "9 tasks running on the two remaining machines",
      async () => {
        const tasks = await liveTasks();
        return tasks.length === 9 && tasks.every((t) => t.nodeHostname !== C) && tasks;
      },
      20_000,
      async () => perMachine(await liveTasks()),
    );
    const took = Date.now() - killedAt;
    expect(took).toBeLessThan(20_000);
    const tasks = await exactlyOnce(9, [A, B]);
    expect(Object.keys(perMachine(tasks)).sort()).toEqual([A, B].sort());
    const node = (await json<{ hostname: string; status: string }[]>("/api/v1/nodes")).find((n) => n.hostname === C);
    expect(node?.status).toBe("down");
    // The survivors' meshes drop the dead tasks: every answer comes from a live one.
    const alive = new Set(tasks.map((t) => t.containerId!.slice(0, 12)));
    for (const m of [A, B]) {
      await until(`${m}:8080 to answer only from live tasks`, async () => {
        for (let i = 0; i < 9; i++) {
          const res = await get(ips[m]);
          if (res.status !== 200 || !alive.has(res.body)) return false;
        }
        return true;
      });
    }
  });

  it("moves a drained node's tasks to the other, and back into use when active", { timeout: 120_000 }, async () => {
    expect((await ctl(["node", "update", "--availability", "drain", B])).code).toBe(0);
    await until("all 9 on the one active machine", async () => {
      const tasks = await liveTasks();
      return tasks.length === 9 && tasks.every((t) => t.nodeHostname === A);
    });
    // The drained machine's containers are stopped and removed, not left running.
    await until(`no containers left on ${B}`, async () => (await containersOn(B)).length === 0, 60_000);
    await exactlyOnce(9, [A, B]);
    expect((await ctl(["node", "update", "--availability", "active", B])).code).toBe(0);
  });

  it("leaves an impossible reservation PENDING, with the reason in ctl service ps", { timeout: 120_000 }, async () => {
    const huge = `huge-${tag}`;
    const r = await ctl(["service", "create", "--timeout", "60s", "--name", huge, "--reserve-memory", "100g", image, "sleep", "3600"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(new RegExp(`${huge}\\.1: no suitable node \\(.*insufficient memory on 2 nodes`));
    const ps = await ctl(["service", "ps", huge]);
    expect(ps.stdout).toMatch(new RegExp(`${huge}\\.1\\s+running\\s+PENDING .*insufficient memory on 2 nodes`));
    expect((await ctl(["service", "rm", huge])).code).toBe(0);
  });

  it("converges once, without duplicates, when the API and worker restart in the middle of a scale", { timeout: 200_000 }, async () => {
    const r = await ctl(["service", "scale", "--detach", `${web}=14`]);
    expect(r.code, r.stderr).toBe(0);
    // Stop while the scale is being worked on; start again on the same database, Redis and port,
    // where the agents' heartbeats and ctl find it.
    await api.running.close();
    const port = Number(new URL(api.url).port);
    restarted = await start({ ...api.config, port }, { logger: false });
    await until(
      "14 tasks running",
      async () => (await liveTasks()).length === 14,
      120_000,
      async () => perMachine(await liveTasks()),
    );
    const tasks = await exactlyOnce(14, [A, B]);
    // Running tasks never move to rebalance (as in swarm): the five new ones all go to the
    // machine with fewest, the one drained before.
    expect(perMachine(tasks)).toEqual({ [A]: 9, [B]: 5 });
  });

  it("removes the service: no containers left on the machines", { timeout: 120_000 }, async () => {
    expect((await ctl(["service", "rm", web])).code).toBe(0);
    for (const m of [A, B]) await until(`no containers left on ${m}`, async () => (await containersOn(m)).length === 0, 60_000);
  });
});
