// The spine, end to end: netns machines created by ctl, whose agents join the control plane by
// heartbeat; a service with a published port spread across them, dispatched over mutual TLS,
// answering HTTP on every machine; scaled; removed. Traffic stays on loopback and on a bridge in
// 198.19.81.0/24 that this test creates.
import { execFileSync } from "node:child_process";
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import type { Server } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestApi, type TestApi } from "../../apps/api/test/support";
import { startRegistry, type TestRegistry } from "../support/registry";
import { forward, parseExports, run } from "./support";

const repo = resolve(__dirname, "../..");
const root = process.getuid?.() === 0;
const tag = process.pid.toString(36);
const BRIDGE = `flsv${tag}`.slice(0, 15);
const GATEWAY = "198.19.81.1";
const MACHINES = [`sva-${tag}`, `svb-${tag}`];

interface TaskView {
  nodeHostname: string | null;
  containerId: string | null;
  state: string;
  desiredState: string;
}

describe.skipIf(!root)("services across netns machines: ctl + reconcile + dispatch over mTLS", () => {
  const base = mkdtempSync(join(tmpdir(), "flotilla-e2e-services-"));
  const regPort = 41000 + (process.pid % 9000);
  const apiPort = regPort + 1;
  const forwarders: Server[] = [];
  let api: TestApi;
  let registry: TestRegistry;
  let env: Record<string, string | undefined>;

  const ctl = (args: string[]) => run(process.execPath, ["--import", "tsx", join(repo, "apps/ctl/src/main.ts"), ...args], env, 300_000);
  const json = async <T>(path: string): Promise<T> => (await (await api.fetch(path)).json()) as T;
  const until = async <T>(what: string, probe: () => Promise<T | undefined | false>, ms = 90_000): Promise<T> => {
    const end = Date.now() + ms;
    for (;;) {
      const v = await probe();
      if (v) return v;
      if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 250));
    }
  };
  const runningPerMachine = async (service: string) => {
    const tasks = await json<TaskView[]>(`/api/v1/tasks?service=${service}&desired-state=running`);
    const counts: Record<string, number> = {};
    for (const t of tasks) if (t.state === "RUNNING") counts[t.nodeHostname!] = (counts[t.nodeHostname!] ?? 0) + 1;
    return counts;
  };

  beforeAll(async () => {
    // The machines' bridge exists before the first machine, so the API and registry forwarders can
    // listen on its gateway from the start (the netns driver adopts a bridge with its gateway).
    execFileSync("ip", ["link", "add", BRIDGE, "type", "bridge"]);
    execFileSync("ip", ["addr", "add", `${GATEWAY}/24`, "dev", BRIDGE]);
    execFileSync("ip", ["link", "set", BRIDGE, "up"]);
    const bundle = join(base, "flotilla-agent.tar.gz");
    execFileSync("node", [join(repo, "scripts/build-agent-bundle.mjs"), "--out", bundle], { stdio: "ignore" });
    process.env.FLOTILLA_DATA_DIR = join(base, "data");
    process.env.FLOTILLA_AGENT_BUNDLE = bundle;
    process.env.FLOTILLA_AGENT_API_URL = `http://${GATEWAY}:${apiPort}`;
    api = await startTestApi({ FLOTILLA_HEARTBEAT_MS: "1000" });
    registry = await startRegistry();
    await registry.pushBusybox("busybox:latest");
    forwarders.push(await forward(GATEWAY, regPort, Number(registry.host.split(":")[1])));
    forwarders.push(await forward(GATEWAY, apiPort, Number(new URL(api.url).port)));
    env = {
      PATH: process.env.PATH,
      HOME: join(base, "home"),
      FLOTILLA_CONFIG_DIR: api.config.configDir,
      TSX_TSCONFIG_PATH: join(repo, "apps/ctl/tsconfig.json"),
    };
  }, 180_000);

  afterAll(async () => {
    for (const f of forwarders) f.close();
    if (api) {
      for (const m of MACHINES) await ctl(["machine", "rm", "-f", "-y", m]).catch(() => undefined);
      await api.stop();
    }
    await registry?.stop();
    delete process.env.FLOTILLA_AGENT_API_URL;
    for (const m of MACHINES) {
      try {
        execFileSync("ip", ["netns", "del", `flt-${m}`], { stdio: "ignore" });
      } catch {
        // already gone
      }
    }
    try {
      execFileSync("ip", ["link", "del", BRIDGE], { stdio: "ignore" });
    } catch {
      // already gone
    }
    rmSync(base, { recursive: true, force: true });
  });

  it("spreads replicas over the machines, answers on each, scales, and removes", { timeout: 400_000 }, async () => {
    for (const m of MACHINES) {
      const r = await ctl(["machine", "create", "-d", "netns", "--netns-cidr", `${GATEWAY}/24`, "--netns-bridge", BRIDGE, "--engine-insecure-registry", `${GATEWAY}:${regPort}`, m]);
      expect(r.code, r.stderr).toBe(0);
    }
    // The agents join by heartbeat, with their engine URLs (https://IP:2376).
    const nodes = await until("both machines to join as ready nodes", async () => {
      const list = await json<{ hostname: string; status: string; engineUrl: string }[]>("/api/v1/nodes");
      const ready = list.filter((n) => MACHINES.includes(n.hostname) && n.status === "ready");
      return ready.length === 2 && ready;
    });
    for (const n of nodes) expect(n.engineUrl).toMatch(/^https:\/\/198\.19\.81\.\d+:2376$/);

    const image = `${GATEWAY}:${regPort}/busybox:latest`;
    const create = async (args: string[]) => {
      const r = await ctl(["service", "create", "--timeout", "90s", ...args]);
      expect(r.code, `${r.stderr}\n${(await ctl(["service", "ps", "--json", args[1]])).stdout}`).toBe(0);
    };

    // A published port is a host port on each task's node: one task per machine, each answering.
    const web = `web-${tag}`;
    await create(["--name", web, "--replicas", "2", "--publish", "18080:80", image, "httpd", "-f", "-p", "80"]);
    expect(await runningPerMachine(web)).toEqual(Object.fromEntries(MACHINES.map((m) => [m, 1])));
    for (const m of MACHINES) {
      const ip = (await ctl(["machine", "ip", m])).stdout.trim();
      const res = await fetch(`http://${ip}:18080/`, { signal: AbortSignal.timeout(10_000) });
      // busybox httpd with no index page: a 404 is its answer.
      expect([200, 404]).toContain(res.status);
    }

    // The containers' network namespaces belong to their machine, not to the host's /run/netns,
    // so removing a machine with containers running leaves none behind.
    const hostNetns = readdirSync("/run/netns");
    const webTasks = await json<{ containerId: string | null }[]>(`/api/v1/tasks?service=${web}&desired-state=running`);
    expect(webTasks.length).toBe(2);
    for (const t of webTasks) expect(hostNetns.some((n) => n.includes(t.containerId!.slice(0, 12)))).toBe(false);

    // Replicas spread evenly, and stay even when scaled.
    const work = `work-${tag}`;
    await create(["--name", work, "--replicas", "4", image, "sleep", "3600"]);
    expect(await runningPerMachine(work)).toEqual(Object.fromEntries(MACHINES.map((m) => [m, 2])));
    const scaled = await ctl(["service", "scale", `${work}=6`]);
    expect(scaled.code, scaled.stderr).toBe(0);
    expect(await runningPerMachine(work)).toEqual(Object.fromEntries(MACHINES.map((m) => [m, 3])));
    const ls = await ctl(["service", "ls"]);
    expect(ls.stdout).toMatch(new RegExp(`${work}\\s.*6/6`));
    expect(ls.stdout).toMatch(new RegExp(`${web}\\s.*2/2`));

    expect((await ctl(["service", "rm", web, work])).code).toBe(0);
    // The containers go away on the machines themselves, as docker sees it there.
    for (const m of MACHINES) {
      const dockerEnv = { ...env, ...parseExports((await ctl(["machine", "env", m])).stdout), DOCKER_CONFIG: join(base, "docker") };
      await until(`no containers left on ${m}`, async () => {
        const ps = await run("docker", ["ps", "-a", "-q"], dockerEnv);
        return ps.code === 0 && ps.stdout.trim() === "";
      }, 60_000);
    }
  });
});
