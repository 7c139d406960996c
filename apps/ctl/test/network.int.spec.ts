// `ctl network` and the services' network flags against the real API (no agents: the API role
// alone; a service's VIP is given when it is created, its tasks' addresses only at dispatch).
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestApi, type TestApi } from "../../api/test/support";
import { ctl } from "./run-ctl";

describe("ctl network", () => {
  let api: TestApi;
  let env: Record<string, string>;
  beforeAll(async () => {
    api = await startTestApi({ FLOTILLA_ROLE: "api" });
    env = { FLOTILLA_CONFIG_DIR: api.config.configDir };
  });
  afterAll(() => api?.stop());

  it("creates, lists and inspects overlay networks", async () => {
    const made = await ctl(
      ["network", "create", "--driver", "overlay", "--subnet", "198.19.204.0/24", "--label", "tier=db", "backend"],
      env,
    );
    expect(made.stderr).toBe("");
    expect(made.stdout.trim()).toMatch(/^[0-9a-f-]{36}$/);
    expect((await ctl(["network", "create", "pooled"], env)).code).toBe(0);
    const ls = await ctl(["network", "ls"], env);
    expect(ls.stdout).toMatch(/^ID\s+NAME\s+DRIVER\s+SUBNET\s+GATEWAY\s+VNI\s+SERVICES\n/);
    expect(ls.stdout).toMatch(/backend\s+overlay\s+198\.19\.204\.0\/24\s+198\.19\.204\.1\s+\d+/);
    expect(ls.stdout).toMatch(/pooled\s+overlay\s+10\.0\.0\.0\/24\s+10\.0\.0\.1/);
    expect((await ctl(["network", "ls", "-q"], env)).stdout.trim().split("\n")).toEqual(["backend", "pooled"]);
    const [inspected] = JSON.parse((await ctl(["network", "inspect", "backend"], env)).stdout) as { labels: object; vni: number }[];
    expect(inspected).toMatchObject({ labels: { tier: "db" } });
  });

  it("refuses other drivers, options not supported yet and overlapping subnets, naming them", async () => {
    const bridge = await ctl(["network", "create", "--driver", "bridge", "b"], env);
    expect(bridge).toMatchObject({
      code: 1,
      stderr: "ctl: --driver bridge: not supported: cluster networks use the overlay driver (--driver overlay)\n",
    });
    const enc = await ctl(["network", "create", "--driver", "overlay", "--opt", "encrypted", "secure"], env);
    expect(enc).toMatchObject({ code: 1, stderr: "ctl: --opt encrypted: not supported yet\n" });
    expect((await ctl(["network", "create", "--attachable", "att"], env)).stderr).toBe("ctl: --attachable: not supported yet\n");
    const overlap = await ctl(["network", "create", "--subnet", "198.19.204.128/25", "over"], env);
    expect(overlap).toMatchObject({ code: 1, stderr: 'ctl: subnet 198.19.204.128/25 overlaps network "backend" (198.19.204.0/24)\n' });
    expect((await ctl(["network", "ls", "-q"], env)).stdout.trim().split("\n")).toEqual(["backend", "pooled"]);
  });

  it("puts services on networks with aliases and an endpoint mode, edits them, and shows the VIPs", async () => {
    const created = await ctl(
      ["service", "create", "-d", "--name", "db", "--network", "name=backend,alias=database,alias=pg", "--network", "pooled", "busybox"],
      env,
    );
    expect(created.code).toBe(0);
    const inspect = async () => (JSON.parse((await ctl(["service", "inspect", "db"], env)).stdout) as Svc[])[0];
    type Svc = {
      spec: { networks: { target: string; aliases: string[] }[]; endpointMode: string };
      virtualIps: { network: string; addr: string }[];
    };
    let svc = await inspect();
    expect(svc.spec.networks.map((n) => n.aliases)).toEqual([["database", "pg"], []]);
    expect(svc.virtualIps).toEqual([
      { networkId: expect.any(String), network: "backend", addr: "198.19.204.2" },
      { networkId: expect.any(String), network: "pooled", addr: "10.0.0.2" },
    ]);
    const missing = await ctl(["service", "create", "-d", "--name", "lost", "--network", "nowhere", "busybox"], env);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('network "nowhere" does not exist');
    expect((await ctl(["service", "create", "-d", "--name", "x", "--network", "name=backend,ip=1.2.3.4", "busybox"], env)).stderr).toBe(
      "ctl: --network: ip is not supported yet\n",
    );

    expect((await ctl(["network", "rm", "pooled"], env)).stderr).toBe("ctl: network pooled is in use by service db\n");
    expect((await ctl(["service", "update", "-d", "--network-rm", "pooled", "--endpoint-mode", "dnsrr", "db"], env)).code).toBe(0);
    svc = await inspect();
    expect(svc.spec.endpointMode).toBe("dnsrr");
    expect(svc.spec.networks).toHaveLength(1);
    expect(svc.virtualIps).toEqual([]);
    expect(
      (await ctl(["service", "update", "-d", "--network-add", "name=pooled,alias=cache", "--endpoint-mode", "vip", "db"], env)).code,
    ).toBe(0);
    svc = await inspect();
    expect(svc.spec.networks.map((n) => n.aliases)).toEqual([["database", "pg"], ["cache"]]);
    expect(svc.virtualIps.map((v) => v.network)).toEqual(["backend", "pooled"]);

    expect((await ctl(["service", "rm", "db"], env)).code).toBe(0);
    const rm = await ctl(["network", "rm", "pooled", "backend"], env);
    expect(rm).toMatchObject({ code: 0, stdout: "pooled\nbackend\n" });
  });

  it("documents the flags in --help", async () => {
    expect((await ctl(["network", "create", "--help"], env)).stdout).toContain("--subnet <cidr>");
    const help = (await ctl(["service", "create", "--help"], env)).stdout;
    expect(help).toContain("--network <network>");
    expect(help).toContain("--endpoint-mode <mode>");
    expect((await ctl(["service", "update", "--help"], env)).stdout).toContain("--network-rm <network>");
  });
});
