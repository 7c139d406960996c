// Overlay networks end to end (issue 14): the control plane's IPAM, VIPs and per-node tables
// meeting the agents' VXLAN, VIP DNAT and DNS on three netns machines made by ctl. From a task's
// container (docker exec over the machine's mTLS env): a service's name resolves to its VIP, the
// VIP reaches tasks on every machine, tasks.NAME lists every task, dnsrr resolves to the tasks; a
// task scaled away or not yet healthy gets no new connection; a network has devices only where
// its tasks are and isolates them; a compose stack's services reach each other by name, one is
// updated to another image alone, and nothing is left behind; a network in use is not removed. Traffic stays on 198.19.230.0/24 (the
// machines' bridge) and the overlay subnets 198.19.231–233.0/24, which this test creates.
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startNetnsLab, type NetnsLab } from "./lab";
import { removeLeftovers, run } from "./support";
import { until as pollUntil } from "../support/until";
import { testBridge } from "../support/leftovers";

const root = process.getuid?.() === 0;
const tag = process.pid.toString(36);
const BRIDGE = testBridge("flov");
const GATEWAY = "198.19.230.1";
const [A, B, C] = [`ova-${tag}`, `ovb-${tag}`, `ovc-${tag}`];
const MACHINES = [A, B, C];
const APPNET = "198.19.231.0/24";
const LONENET = "198.19.232.0/24";
const STACKNET = "198.19.233.0/24";
// Each task serves its container's host name (the container id's first 12 characters).
const WHOAMI = ["sh", "-c", "mkdir -p /www && hostname > /www/index.html && exec httpd -f -p 80 -h /www"];

interface TaskView {
  id: string;
  serviceName: string;
  nodeHostname: string | null;
  containerId: string | null;
  state: string;
  desiredState: string;
}

describe.skipIf(!root)("overlay networks across three netns machines", () => {
  const base = mkdtempSync(join(tmpdir(), "flotilla-e2e-overlay-"));
  const regPort = 38000 + (process.pid % 4000);
  let lab: NetnsLab;
  const envs = new Map<string, Record<string, string | undefined>>();
  let client: TaskView;

  const until = <T>(what: string, probe: () => Promise<T | undefined | false>, ms = 60_000) => pollUntil(what, probe, ms);
  const ctl = async (args: string[], ok = true) => {
    const r = await lab.ctl(args);
    if (ok) expect(r.code, `ctl ${args.join(" ")}: ${r.stderr}`).toBe(0);
    return r;
  };
  const running = async (service: string, n: number) =>
    until(`${n} running tasks of ${service}`, async () => {
      const l = (await lab.json<TaskView[]>(`/api/v1/tasks?service=${service}`)).filter(
        (t) => t.state === "RUNNING" && t.desiredState === "running",
      );
      return l.length === n && l;
    });
  /** Runs `sh -c script` in a task's container, on its machine; the output (stdout), or throws. */
  const exec = async (t: TaskView, script: string) => {
    const r = await run("docker", ["exec", t.containerId!, "sh", "-c", script], envs.get(t.nodeHostname!)!, 60_000);
    if (r.code !== 0) throw new Error(`exec ${script}: ${r.stderr}`);
    return r.stdout;
  };
  /** The addresses a name resolves to from inside t (the embedded DNS at 127.0.0.11). */
  const resolve = async (t: TaskView, name: string): Promise<string[]> => {
    const r = await run("docker", ["exec", t.containerId!, "nslookup", "-type=a", name], envs.get(t.nodeHostname!)!, 30_000);
    // After the server's own lines, one "Address: IP" per answer.
    const answers = r.stdout
      .split(/\n\s*\n/)
      .slice(1)
      .join("\n");
    return [...answers.matchAll(/Address:\s*([\d.]+)/g)].map((m) => m[1]).sort();
  };
  /** n new connections from t to ip:80, each answer (a task's host name) or "" when refused. */
  const hits = async (t: TaskView, ip: string, n: number) =>
    [
      ...(
        await exec(t, `for i in $(seq ${n}); do r=$(printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 2 ${ip} 80 | tail -n 1); echo "=$r"; done`)
      ).matchAll(/^=(.*)$/gm),
    ].map((m) => m[1].trim());
  /** The task's address on a subnet ("198.19.231."), read from its interfaces. */
  const addressOn = async (t: TaskView, prefix: string) => {
    const out = await exec(t, "ip -4 -o addr show");
    return [...out.matchAll(/inet ([\d.]+)\//g)].map((m) => m[1]).find((ip) => ip.startsWith(prefix))!;
  };
  const vipOf = async (service: string, network: string) => {
    const [s] = JSON.parse((await ctl(["service", "inspect", service])).stdout) as { virtualIps: { network: string; addr: string }[] }[];
    return s.virtualIps.find((v) => v.network === network)?.addr;
  };
  const vniOf = async (network: string) => (JSON.parse((await ctl(["network", "inspect", network])).stdout) as { vni: number }[])[0].vni;
  /** Whether machine m has a VXLAN device with this VNI (the agent's overlay devices for it). */
  const hasVxlan = (m: string, vni: number) =>
    new RegExp(`vxlan id ${vni} `).test(
      execFileSync("ip", ["-n", `flt-${m}`, "-d", "link", "show", "type", "vxlan"], { encoding: "utf8" }),
    );
  const hostOf = (t: TaskView) => t.containerId!.slice(0, 12);

  beforeAll(async () => {
    lab = await startNetnsLab({ base, gateway: GATEWAY, bridge: BRIDGE, apiPort: regPort + 1, regPort });
    for (const m of MACHINES) expect((await lab.createMachine(m, BRIDGE)).code).toBe(0);
    await until("the machines ready", async () => {
      const nodes = await lab.json<{ hostname: string; status: string }[]>("/api/v1/nodes");
      return MACHINES.every((m) => nodes.some((n) => n.hostname === m && n.status === "ready"));
    });
    for (const m of MACHINES) envs.set(m, await lab.dockerEnv(m));
    // A second tag of busybox for the stack's image update.
    await lab.registry.pushBusybox("busybox:v2");
    await ctl(["network", "create", "--driver", "overlay", "--subnet", APPNET, "appnet"]);
  }, 400_000);

  afterAll(async () => {
    await lab?.stop(MACHINES);
    removeLeftovers(MACHINES, BRIDGE);
    rmSync(base, { recursive: true, force: true });
  });

  it("resolves a service to its VIP, which reaches tasks on every machine; tasks.NAME lists them", { timeout: 240_000 }, async () => {
    await ctl(["service", "create", "--timeout", "120s", "--name", "api", "--network", "appnet", "--replicas", "4", lab.image, ...WHOAMI]);
    await ctl(["service", "create", "--timeout", "120s", "--name", "client", "--network", "appnet", lab.image, "sleep", "3600"]);
    const api = await running("api", 4);
    expect(new Set(api.map((t) => t.nodeHostname))).toEqual(new Set(MACHINES));
    [client] = await running("client", 1);
    const vip = await vipOf("api", "appnet");
    expect(vip).toMatch(/^198\.19\.231\./);
    expect(await resolve(client, "api")).toEqual([vip]);
    const ips = await Promise.all(api.map((t) => addressOn(t, "198.19.231.")));
    expect(await resolve(client, "tasks.api")).toEqual([...ips].sort());
    // The kernel takes backends in turn: new connections reach every task, on every machine.
    const seen = await until("the VIP to answer from every task", async () => {
      const s = new Set(await hits(client, vip!, 8));
      return s.size === 4 && s;
    });
    expect(seen).toEqual(new Set(api.map(hostOf)));
  });

  it("dnsrr: the service's name resolves to its tasks' addresses, and it has no VIP", { timeout: 180_000 }, async () => {
    await ctl([
      "service",
      "create",
      "--timeout",
      "120s",
      "--name",
      "rr",
      "--network",
      "appnet",
      "--endpoint-mode",
      "dnsrr",
      "--replicas",
      "2",
      lab.image,
      ...WHOAMI,
    ]);
    const rr = await running("rr", 2);
    expect(await vipOf("rr", "appnet")).toBeUndefined();
    const ips = (await Promise.all(rr.map((t) => addressOn(t, "198.19.231.")))).sort();
    expect(
      await until("rr to resolve to both tasks", async () => JSON.stringify(await resolve(client, "rr")) === JSON.stringify(ips)),
    ).toBe(true);
    const answers = new Set<string>();
    for (const ip of ips) for (const h of await hits(client, ip, 1)) answers.add(h);
    expect(answers).toEqual(new Set(rr.map(hostOf)));
    await ctl(["service", "rm", "rr"]);
  });

  it("drops a task scaled away from DNS and from the VIP at once", { timeout: 180_000 }, async () => {
    const before = await running("api", 4);
    const vip = (await vipOf("api", "appnet"))!;
    await ctl(["service", "scale", "api=3"]);
    const left = await running("api", 3);
    const gone = before.find((t) => !left.some((l) => l.id === t.id))!;
    const leftIps = (await Promise.all(left.map((t) => addressOn(t, "198.19.231.")))).sort();
    // Briefly: the table reaches the agents by long poll, not by the next heartbeat.
    await until(
      "tasks.api without the removed task",
      async () => JSON.stringify(await resolve(client, "tasks.api")) === JSON.stringify(leftIps),
      5_000,
    );
    const answers = await hits(client, vip, 9);
    expect(answers.filter((h) => h === hostOf(gone))).toEqual([]);
    expect(new Set(answers)).toEqual(new Set(left.map(hostOf)));
  });

  it("sends VIP traffic only to healthy tasks", { timeout: 180_000 }, async () => {
    // Healthy once /tmp/ready exists; the long start period keeps a task STARTING, not failed.
    const hc = ["--health-cmd", "test -f /tmp/ready", "--health-interval", "1s", "--health-start-period", "10m"];
    // Global: one task per machine, so two of them are across VXLAN from the client.
    await ctl(["service", "create", "-d", "--name", "hc", "--network", "appnet", "--mode", "global", ...hc, lab.image, ...WHOAMI]);
    const starting = await until("three hc tasks STARTING", async () => {
      const l = (await lab.json<TaskView[]>("/api/v1/tasks?service=hc")).filter((t) => t.state === "STARTING" && t.containerId);
      return l.length === 3 && l;
    });
    const vip = (await vipOf("hc", "appnet"))!;
    // No healthy task yet: nothing answers through the VIP.
    expect(await hits(client, vip, 2)).toEqual(["", ""]);
    // A task across VXLAN from the client becomes healthy second: its first connections cross.
    // The third never becomes healthy and never answers.
    const first = starting.find((t) => t.nodeHostname === client.nodeHostname)!;
    const second = starting.find((t) => t !== first)!;
    await exec(first, "touch /tmp/ready");
    const seen = await until("the VIP to answer from the healthy task", async () => {
      const a = await hits(client, vip, 6);
      return a.every((h) => h !== "") && new Set(a);
    });
    expect([...seen]).toEqual([hostOf(first)]);
    await exec(second, "touch /tmp/ready");
    const both = await until("the VIP to answer from both healthy tasks", async () => {
      const s = new Set(await hits(client, vip, 6));
      return s.size === 2 && !s.has("") && s;
    });
    // Enough turns of the round robin for an unhealthy third backend to have shown.
    expect(new Set(await hits(client, vip, 9))).toEqual(both);
    expect(both).toEqual(new Set([hostOf(first), hostOf(second)]));
    await ctl(["service", "rm", "hc"]);
  });

  it("has a network's devices only on machines with its tasks, and isolates its tasks", { timeout: 180_000 }, async () => {
    await ctl(["network", "create", "--driver", "overlay", "--subnet", LONENET, "lonenet"]);
    await ctl([
      "service",
      "create",
      "--timeout",
      "120s",
      "--name",
      "lone",
      "--network",
      "lonenet",
      "--constraint",
      `node.hostname==${A}`,
      lab.image,
      ...WHOAMI,
    ]);
    const [lone] = await running("lone", 1);
    const vni = await vniOf("lonenet");
    expect(hasVxlan(A, vni)).toBe(true);
    expect(hasVxlan(B, vni)).toBe(false);
    expect(hasVxlan(C, vni)).toBe(false);
    // The client (appnet only) neither resolves lone nor reaches its address; a task on
    // lonenet does not reach an appnet task either.
    const loneIp = await addressOn(lone, "198.19.232.");
    expect(await resolve(client, "lone")).toEqual([]);
    expect(await hits(client, loneIp, 1)).toEqual([""]);
    const [api] = await running("api", 3);
    expect(await hits(lone, await addressOn(api, "198.19.231."), 1)).toEqual([""]);
    await ctl(["service", "rm", "lone"]);
    await ctl(["network", "rm", "lonenet"]);
    await until("lonenet's devices gone", async () => !hasVxlan(A, vni), 20_000);
  });

  it(
    "deploys a compose stack whose services reach each other by name, updates one's image, removes it all",
    { timeout: 240_000 },
    async () => {
      const compose = (backendImage: string, greeting: string) =>
        [
          "services:",
          "  web:",
          `    image: ${lab.image}`,
          "    command: [sleep, '3600']",
          "  backend:",
          `    image: ${backendImage}`,
          `    environment: { GREETING: ${greeting} }`,
          // httpd as PID 1 ignores SIGTERM: a short grace period keeps the update quick.
          "    stop_grace_period: 1s",
          `    command: [sh, -c, 'mkdir -p /www && echo $$GREETING > /www/index.html && exec httpd -f -p 80 -h /www']`,
          "networks:",
          "  default:",
          `    ipam: { config: [{ subnet: '${STACKNET}' }] }`,
        ].join("\n");
      const file = join(base, "compose.yml");
      writeFileSync(file, compose(lab.image, "hello"));
      await ctl(["stack", "deploy", "-c", file, "app"]);
      const [web] = await running("app_web", 1);
      await running("app_backend", 1);
      const vip = (await vipOf("app_backend", "app_default"))!;
      expect(await resolve(web, "backend")).toEqual([vip]);
      expect(await until("web to reach backend by name", async () => (await hits(web, "backend", 1))[0] === "hello")).toBe(true);

      const v2 = lab.image.replace(/:latest$/, ":v2");
      writeFileSync(file, compose(v2, "again"));
      await ctl(["stack", "deploy", "-c", file, "app"]);
      expect(await until("backend to answer from its new task", async () => (await hits(web, "backend", 1))[0] === "again")).toBe(true);
      const [backend] = JSON.parse((await ctl(["service", "inspect", "app_backend"])).stdout) as { spec: { image: string } }[];
      expect(backend.spec.image).toBe(v2);
      // Only backend changed: web's task is the same container.
      const [web2] = await running("app_web", 1);
      expect(web2.containerId).toBe(web.containerId);

      const vni = await vniOf("app_default");
      await ctl(["stack", "rm", "app"]);
      await until("the stack's services gone", async () => !(await ctl(["service", "ls"])).stdout.includes("app_"));
      await until("app_default gone", async () => !(await ctl(["network", "ls"])).stdout.includes("app_default"));
      await until("app_default's devices gone on every machine", async () => MACHINES.every((m) => !hasVxlan(m, vni)), 20_000);
    },
  );

  it("refuses to remove a network in use, naming the services; removes it and its devices once free", { timeout: 120_000 }, async () => {
    const vni = await vniOf("appnet");
    const refused = await ctl(["network", "rm", "appnet"], false);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(/\bapi\b/);
    expect(refused.stderr).toMatch(/\bclient\b/);
    expect((await ctl(["network", "ls"])).stdout).toContain("appnet");
    await ctl(["service", "rm", "api", "client"]);
    await until("appnet removable", async () => (await ctl(["network", "rm", "appnet"], false)).code === 0);
    expect((await ctl(["network", "ls"])).stdout).not.toContain("appnet");
    await until("appnet's devices gone on every machine", async () => MACHINES.every((m) => !hasVxlan(m, vni)), 20_000);
  });
});
