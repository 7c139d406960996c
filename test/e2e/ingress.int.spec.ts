// The ingress mesh in the kernel, end to end (issue 14): two netns machines with real agents and
// a control plane of their own (the faults lab), busybox httpd services published through the
// mesh. Every machine answers on a published port, from tasks on both machines, through iptables
// DNAT (not a proxy), and the agent holds the port with a socket in the machine's own namespace
// so no process there can bind it (both machines hold it on the test host's one kernel); a task
// removed drops out of every machine's answers; traffic=local answers only from the receiving
// machine's own task and the task's httpd log shows the client's own address. Traffic stays on
// 198.19.130.0/24, which this test creates.
import { execFileSync } from "node:child_process";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BIND_PROBE } from "../../agent/test/support/network-helpers";
import { FaultLab, until } from "../faults/lab";
import { run } from "./support";

const root = process.getuid?.() === 0;
// Each task serves its container's host name and logs each request with the client's address.
const WHOAMI = ["sh", "-c", "mkdir -p /www && hostname > /www/index.html && exec httpd -f -vv -p 80 -h /www"];

describe.skipIf(!root)("ingress in the kernel across two netns machines", () => {
  const lab = new FaultLab({
    tag: `i${process.pid.toString(36)}`,
    subnet: 130,
    heartbeatMs: 1000,
    sweepMs: 5000,
    agentMaxBackoffMs: 2000,
    machines: 2,
  });
  const [A, B] = lab.machines;

  beforeAll(async () => {
    await lab.up();
  }, 400_000);
  afterAll(async () => {
    await lab.down();
  }, 120_000);

  const inMachine = (m: string, cmd: string[]) => execFileSync("ip", ["netns", "exec", `flt-${m}`, ...cmd], { encoding: "utf8" });
  /** The task (container host name) that answers on machine m's port, once per request. */
  const answers = async (m: string, port: number, n: number): Promise<string[]> => {
    const out: string[] = [];
    for (let i = 0; i < n; i++) {
      const res = await fetch(`http://${lab.ips[m]}:${port}/`, { signal: AbortSignal.timeout(3000) });
      out.push((await res.text()).trim());
    }
    return out;
  };
  const create = async (name: string, replicas: number, publish: string) => {
    const r = await lab.ctl(
      [
        "service",
        "create",
        "--timeout",
        "120s",
        "--name",
        name,
        "--replicas",
        String(replicas),
        "--publish",
        publish,
        lab.image,
        ...WHOAMI,
      ],
      200_000,
    );
    expect(r.code, r.stderr).toBe(0);
    const tasks = await until(async () => {
      const t = await lab.runningTasks(name);
      return t.length === replicas && t;
    }, 60_000);
    expect(tasks).toBeTruthy();
    return new Map(tasks!.map((t) => [t.containerId!.slice(0, 12), t]));
  };

  it(
    "answers on every machine's published port from the tasks on both, through DNAT rules, the port held against other processes",
    { timeout: 200_000 },
    async () => {
      const tasks = await create("web", 2, "8080:80");
      expect(new Set([...tasks.values()].map((t) => t.nodeHostname))).toEqual(new Set([A, B]));
      for (const m of [A, B]) {
        // Round robin over new connections: four in a row reach both tasks once the table is in.
        const seen = await until(async () => {
          const got = new Set(await answers(m, 8080, 4));
          return got.size === 2 && got;
        }, 30_000);
        expect(seen && new Set(seen)).toEqual(new Set(tasks.keys()));
        expect(inMachine(m, ["iptables", "-w", "-t", "nat", "-S", "FLOTILLA-IDNAT"])).toMatch(/--dport 8080 .*-j DNAT --to-destination/);
        // The agent's hold, in the machine's namespace where the rule is: another process there cannot take the port.
        expect(inMachine(m, [process.execPath, "-e", BIND_PROBE, "8080"])).toBe("EADDRINUSE");
      }
    },
  );

  it("drops a removed task from every machine's answers", { timeout: 120_000 }, async () => {
    const r = await lab.ctl(["service", "scale", "web=1"]);
    expect(r.code, r.stderr).toBe(0);
    const left = await until(async () => {
      const t = await lab.runningTasks("web");
      return t.length === 1 && t[0];
    }, 60_000);
    const survivor = left!.containerId!.slice(0, 12);
    for (const m of [A, B])
      await until(async () => (await answers(m, 8080, 6)).every((h) => h === survivor), 30_000).then((ok) =>
        expect(ok, `${m}:8080 still answers from the removed task`).toBe(true),
      );
  });

  it("traffic=local: each machine answers only from its own task, which sees the client's address", { timeout: 200_000 }, async () => {
    const tasks = await create("loc", 2, "published=8081,target=80,traffic=local");
    const ps = await lab.ctl(["service", "ls"]);
    expect(ps.stdout).toMatch(/loc\s+replicated\s+2\/2\s+\S+\s+local:8081->80\/tcp/);
    for (const m of [A, B]) {
      const own = [...tasks.entries()].find(([, t]) => t.nodeHostname === m)![0];
      await until(async () => (await answers(m, 8081, 6)).every((h) => h === own), 30_000).then((ok) =>
        expect(ok, `${m}:8081 answers from another machine's task`).toBe(true),
      );
      // The test reaches the machines from the bridge's gateway: that is the address the task must log.
      const logs = await run("docker", ["logs", tasks.get(own)!.containerId!], (await lab.dockerEnv(m)) as Record<string, string>);
      // busybox httpd logs an IPv4 client as [::ffff:ADDRESS]:PORT.
      const clients = new Set([...(logs.stdout + logs.stderr).matchAll(/^\[?(?:::ffff:)?([\d.]+)\]?:\d+: url:/gm)].map((x) => x[1]));
      expect(clients).toEqual(new Set([lab.gateway]));
    }
  });
});
