import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { TestApi } from "../../api/test/support";
import { runningContainers, simNodes, startFastApi, until } from "../../api/test/services-support";
import type { SimAgent } from "../../../test/support/sim-agent";
import { ctl } from "./run-ctl";

describe("ctl service and ctl node against sim agents", () => {
  let api: TestApi;
  let agents: SimAgent[];
  let env: Record<string, string>;
  beforeAll(async () => {
    api = await startFastApi();
    agents = await simNodes(api, 3, { labelsOf: (i) => ({ zone: i === 1 ? "a" : "b" }) });
    env = { FLOTILLA_CONFIG_DIR: api.config.configDir };
  });
  afterAll(async () => {
    await Promise.all((agents ?? []).map((a) => a.stop()));
    await api?.stop();
  });

  it("creates a service and follows it until it converges", async () => {
    const r = await ctl(
      [
        "service",
        "create",
        "--name",
        "web",
        "--replicas",
        "3",
        "--publish",
        "published=8080,target=80,mode=host",
        "--env",
        "K=V",
        "--placement-pref",
        "spread=node.labels.zone",
        "--reserve-memory",
        "64m",
        "--limit-memory",
        "128m",
        "--limit-cpu",
        "0.5",
        "--restart-condition",
        "on-failure",
        "--update-parallelism",
        "2",
        "--update-delay",
        "5s",
        "busybox",
        "httpd",
        "-f",
        "-p",
        "80",
      ],
      env,
    );
    expect(r.stderr).toContain("web: 3/3 tasks running");
    expect(r.stderr).toContain("web: converged");
    expect(r.code).toBe(0);
    expect(r.stdout.trim()).toMatch(/^[0-9a-f-]{36}$/);
    const inspect = JSON.parse((await ctl(["service", "inspect", "web"], env)).stdout)[0];
    expect(inspect.spec).toMatchObject({
      // Flags after IMAGE belong to the command, as with docker.
      args: ["httpd", "-f", "-p", "80"],
      env: { K: "V" },
      ports: [{ published: 8080, target: 80, protocol: "tcp", mode: "host" }],
      placement: { preferences: [{ spread: "node.labels.zone" }] },
      resources: { reservations: { memoryBytes: 64 * 1024 ** 2 }, limits: { memoryBytes: 128 * 1024 ** 2, nanoCpus: 500_000_000 } },
      restartPolicy: { condition: "on-failure" },
      updateConfig: { parallelism: 2, delayMs: 5000 },
    });
    // A host port: one task per node.
    expect(new Set(runningContainers(agents).map((c) => c.agent)).size).toBe(3);
  });

  it("lists services with running/desired, as a table, JSON and ids", async () => {
    const ls = await ctl(["service", "ls"], env);
    expect(ls.code).toBe(0);
    expect(ls.stdout).toMatch(
      /^ID\s+NAME\s+MODE\s+REPLICAS\s+IMAGE\s+PORTS\n[0-9a-f-]{12}\s+web\s+replicated\s+3\/3\s+busybox\s+host:8080->80\/tcp\n$/,
    );
    const asJson = JSON.parse((await ctl(["service", "ls", "--json"], env)).stdout);
    expect(asJson[0]).toMatchObject({ name: "web", running: 3, desired: 3 });
    expect((await ctl(["service", "ls", "-q"], env)).stdout.trim()).toBe(asJson[0].id);
  });

  it("scales and shows the tasks with ps", async () => {
    // Port 8080 on three nodes: a fourth replica cannot be placed, so scale to 2 first.
    const down = await ctl(["service", "scale", "web=2"], env);
    expect(down.code).toBe(0);
    expect(down.stderr).toContain("web: converged");
    const ps = await ctl(["service", "ps", "web"], env);
    expect(ps.stdout.split("\n")[0]).toMatch(/^ID\s+NAME\s+NODE\s+DESIRED STATE\s+CURRENT STATE\s+ERROR$/);
    expect(ps.stdout).toMatch(/web\.1\s+sim-\d\s+running\s+RUNNING/);
    expect(ps.stdout).toMatch(/web\.3\s+sim-\d\s+shutdown\s+SHUTDOWN/);
    // ctl node ps: the same table, for the tasks of one node.
    const node = /web\.1\s+(sim-\d)/.exec(ps.stdout)![1]!;
    const nodePs = await ctl(["node", "ps", node], env);
    expect(nodePs.code, nodePs.stderr).toBe(0);
    const rows = nodePs.stdout.trim().split("\n");
    expect(rows[0]).toMatch(/^ID\s+NAME\s+NODE\s+DESIRED STATE\s+CURRENT STATE\s+ERROR$/);
    expect(rows.slice(1).join("\n")).toMatch(/web\.1\s+sim-\d\s+running\s+RUNNING/);
    for (const row of rows.slice(1)) expect(row).toMatch(new RegExp(`\\s${node}\\s`));
    expect((await ctl(["node", "ps", "no-such-node"], env)).code).toBe(1);
  });

  it("exits 1 with the reason when a task cannot be placed, and ps shows it", async () => {
    const r = await ctl(["service", "scale", "web=4"], env);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("ctl: web: 1 task(s) cannot be placed: no suitable node (host port already in use on 3 nodes)");
    const ps = await ctl(["service", "ps", "web"], env);
    expect(ps.stdout).toMatch(/web\.4\s+running\s+PENDING .*no suitable node \(host port already in use on 3 nodes\)/);
    expect((await ctl(["service", "scale", "web=3", "--detach"], env)).code).toBe(0);

    const huge = await ctl(["service", "create", "--name", "huge", "--reserve-memory", "100g", "busybox"], env);
    expect(huge.code).toBe(1);
    expect(huge.stderr).toContain("huge.1: no suitable node (insufficient memory on 3 nodes)");
  });

  it("updates, shows logs, and removes services", async () => {
    const up = await ctl(["service", "update", "web", "--env-add", "X=1", "--update-delay", "0s"], env);
    expect(up.code).toBe(0);
    expect(up.stderr).toContain("web: converged");
    const logs = await ctl(["service", "logs", "web"], env);
    expect(logs.stdout).toMatch(/^web\.\d@sim-\d \| hello from web/m);
    const rm = await ctl(["service", "rm", "web", "huge"], env);
    expect(rm).toMatchObject({ code: 0, stdout: "web\nhuge\n" });
    await until("no containers left", async () => runningContainers(agents).length === 0);
    expect((await ctl(["service", "ls", "-q"], env)).stdout).toBe("");
  });

  it("publishes through the ingress mesh: more replicas than nodes, one port for the cluster", async () => {
    const r = await ctl(
      ["service", "create", "--name", "mesh", "--replicas", "5", "-p", "9090:80", "busybox", "httpd", "-f", "-p", "80"],
      env,
    );
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain("mesh: converged");
    expect((await ctl(["service", "ls"], env)).stdout).toMatch(/mesh\s+replicated\s+5\/5\s+busybox\s+\*:9090->80\/tcp/);
    // Every agent learns the same table from its heartbeats: port 9090 → the five tasks' host ports.
    const table = await until("every agent to hold the mesh's five backends", async () => {
      const tables = agents.map((a) => a.ingress?.ports.find((p) => p.port === 9090));
      return tables.every((t) => t?.backends.length === 5) && tables[0];
    });
    expect(table).toMatchObject({ protocol: "tcp", serviceName: "mesh" });
    expect(new Set(table.backends.map((b) => `${b.host}:${b.port}`)).size).toBe(5);

    const clash = await ctl(["service", "create", "--name", "clash", "-p", "published=9090,target=80,mode=host", "busybox"], env);
    expect(clash.code).toBe(1);
    expect(clash.stderr).toContain('ctl: port 9090/tcp is already published by service "mesh" on every node (ingress mode)');
    const udp = await ctl(["service", "create", "--name", "dns", "-p", "53:53/udp", "busybox"], env);
    expect(udp.code).toBe(1);
    expect(udp.stderr).toContain("udp port 53 can only be published in host mode (mode=host)");
    expect((await ctl(["service", "ls", "-q"], env)).stdout.trim().split("\n")).toHaveLength(1);

    expect((await ctl(["service", "rm", "mesh"], env)).code).toBe(0);
    await until("the mesh port to leave every agent's table", async () =>
      agents.every((a) => !a.ingress?.ports.some((p) => p.port === 9090)),
    );
  });

  it("validates flags with the core parsers", async () => {
    const r = await ctl(["service", "create", "--name", "x", "--reserve-memory", "lots", "busybox"], env);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^ctl: --reserve-memory: invalid memory size "lots"/);
  });

  it("promotes and demotes nodes; a node.role constraint follows the role", async () => {
    expect((await ctl(["node", "ls"], env)).stdout).toMatch(/sim-2\s+ready\s+active\s+worker/);
    const promoted = await ctl(["node", "promote", "sim-2"], env);
    expect(promoted, promoted.stderr).toMatchObject({ code: 0, stderr: "sim-2: manager\n" });
    const r = await ctl(["service", "create", "--name", "mgr", "--replicas", "2", "--constraint", "node.role==manager", "busybox"], env);
    expect(r.code, r.stderr).toBe(0);
    const mgr = (JSON.parse((await ctl(["service", "inspect", "mgr"], env)).stdout) as { id: string }[])[0].id;
    const onManagers = () => runningContainers(agents).filter((c) => c.serviceId === mgr);
    await until("both tasks on the manager", async () => onManagers().length === 2 && onManagers().every((c) => c.agent === "sim-2"));
    // Demoted, the node no longer fits: its tasks leave it and wait for a manager.
    const demoted = await ctl(["node", "demote", "sim-2"], env);
    expect(demoted, demoted.stderr).toMatchObject({ code: 0, stderr: "sim-2: worker\n" });
    await until("the tasks to leave the demoted node", async () => onManagers().length === 0, 30_000);
    expect((await ctl(["service", "ps", "mgr"], env)).stdout).toMatch(
      /mgr\.1\s+running\s+PENDING .*scheduling constraints not satisfied on 3 nodes/,
    );
    const bad = await ctl(["node", "update", "sim-2", "--role", "leader"], env);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain("--role");
    expect((await ctl(["service", "rm", "mgr"], env)).code).toBe(0);
  });

  it("lists, updates and removes nodes", async () => {
    const ls = await ctl(["node", "ls"], env);
    expect(ls.stdout).toMatch(/sim-1\s+ready\s+active/);
    const up = await ctl(["node", "update", "sim-1", "--availability", "drain", "--label-add", "disk=ssd"], env);
    expect(up.code).toBe(0);
    const [n] = JSON.parse((await ctl(["node", "inspect", "sim-1"], env)).stdout);
    expect(n).toMatchObject({ availability: "drain", labels: { zone: "a", disk: "ssd" } });
    const rm = await ctl(["node", "rm", "sim-1"], env);
    expect(rm.code).toBe(1);
    expect(rm.stderr).toContain("ctl: node sim-1 is ready");
    expect((await ctl(["node", "rm", "-f", "sim-1"], env)).code).toBe(0);
  });
});
