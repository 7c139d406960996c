// End to end with real virtual machines: the control plane, `ctl machine create -d qemu` twice (the
// Flotilla guest image under TCG: works everywhere, and KVM guests hang on this nested host) and a
// netns machine on the same bridge; on a VM the docker-machine workflow with the real docker
// CLI (`eval $(ctl machine env vm)`, `docker run --rm`, a published port at `ctl machine ip`),
// pulling from the test registry the VMs reach over the bridge; a service spread over the three
// machines with the ingress answering on each; stop/start keeps the VM's disk and a volume; rm
// leaves no process, tap, namespace or file.
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import type { Server } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { qemuNetnsName, qemuVethName } from "@flotilla/drivers";
import { startTestApi, type TestApi } from "../../apps/api/test/support";
import { canBootVms, ensureGuestImage } from "../support/guest-image";
import { freeSubnet24 } from "../support/free-subnet";
import { startRegistry, type TestRegistry } from "../support/registry";
import { placementReport, WarningLog } from "./placement-report";
import { addBridge, forward, parseExports, removeLeftovers, run, useMachinesEnv } from "./support";
import { testBridge } from "../support/leftovers";

const repo = resolve(__dirname, "../..");
const haveDocker = (() => {
  try {
    execFileSync("docker", ["--version"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
})();
const tag = process.pid.toString(36);
const BRIDGE = testBridge("flqe");
// Usually 198.19.93.0/24; another if a leftover bridge holds it.
const SUBNET = freeSubnet24([93, 94, 95, 96, 97]);
const GATEWAY = SUBNET.gateway;
// Where the provisioner has a VM's agent log (libs/provision's layout).
const AGENT_LOG = "/var/log/flotilla-agent.log";

/** Pids of qemu processes whose arguments mention `dir`. */
function qemuUnder(dir: string): string[] {
  return readdirSync("/proc")
    .filter((d) => /^\d+$/.test(d))
    .filter((pid) => {
      try {
        const argv = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
        return argv[0]?.endsWith("qemu-system-x86_64") && argv.some((a) => a.includes(dir));
      } catch {
        return false;
      }
    });
}

describe.skipIf(!canBootVms() || !haveDocker)("qemu machines end to end: ctl + a VM + a netns machine + docker CLI", () => {
  const base = mkdtempSync(join(tmpdir(), "flotilla-e2e-qemu-"));
  let api: TestApi;
  let registry: TestRegistry;
  let forwarder: Server | undefined;
  let env: Record<string, string | undefined>;
  let restoreEnv: (() => void) | undefined;
  const warnings = new WarningLog();
  const regPort = 40000 + (process.pid % 20000);
  const apiPort = regPort + 1;
  const vm = `vm1-${tag}`;
  const vm2 = `vm2-${tag}`;
  const nm = `nm1-${tag}`;
  const image = `${GATEWAY}:${regPort}/busybox:latest`;

  const ctl = (args: string[], timeoutMs = 600_000) =>
    run(process.execPath, ["--import", "tsx", join(repo, "apps/ctl/src/main.ts"), ...args], env, timeoutMs);

  beforeAll(async () => {
    ensureGuestImage();
    // The bridge and its gateway first: the API's relay and the registry's forwarder listen on
    // the gateway, where the VM and the netns machine reach them.
    addBridge(BRIDGE, GATEWAY);
    restoreEnv = useMachinesEnv(base, `http://${GATEWAY}:${apiPort}`);
    // The default heartbeat period (5 s: a node is down after 15 s of silence). A TCG guest on a
    // busy 2-core host answers a beat in seconds, so a 1 s period (down after 3 s) had the VMs
    // declared down and their tasks moved to the netns machine for good.
    api = await startTestApi({ FLOTILLA_AGENT_LISTEN: `${GATEWAY}:${apiPort}` }, warnings);
    registry = await startRegistry();
    await registry.pushBusybox("busybox:latest");
    forwarder = await forward(GATEWAY, regPort, Number(registry.host.split(":")[1]));
    env = {
      PATH: process.env.PATH,
      HOME: join(base, "home"),
      FLOTILLA_CONFIG_DIR: api.config.configDir,
      TSX_TSCONFIG_PATH: join(repo, "apps/ctl/tsconfig.json"),
      DOCKER_CONFIG: join(base, "docker-config"),
    };
  }, 900_000);

  afterAll(async () => {
    if (api) {
      await ctl(["machine", "rm", "-f", "-y", vm, vm2, nm]).catch(() => undefined);
      await api.stop();
    }
    forwarder?.close();
    restoreEnv?.();
    await registry?.stop();
    removeLeftovers([nm], BRIDGE);
    for (const name of [vm, vm2]) {
      try {
        execFileSync("ip", ["netns", "del", qemuNetnsName(name)], { stdio: "ignore" });
      } catch {
        // gone already
      }
    }
    rmSync(base, { recursive: true, force: true });
  });

  it("shows the qemu driver's options in create --help", async () => {
    const r = await ctl(["machine", "create", "--help"]);
    expect(r.code).toBe(0);
    for (const flag of [
      "--qemu-cpu-count INT",
      "--qemu-memory INT",
      "--qemu-disk-size INT",
      "--qemu-image PATH",
      "--qemu-accel ENUM",
      "--qemu-network-cidr CIDR",
    ]) {
      expect(r.stdout).toContain(flag);
    }
  });

  it(
    "creates two VMs and a netns machine; docker run on a VM, a published port, a service on all three through the ingress, stop/start keeping the disk, rm leaving nothing",
    { timeout: 1_200_000 },
    async () => {
      const t0 = Date.now();
      const phase = (what: string) => console.log(`[qemu e2e] ${what} at ${((Date.now() - t0) / 1000).toFixed(1)} s`);
      const net = ["--engine-insecure-registry", `${GATEWAY}:${regPort}`];
      const createVm = (name: string) =>
        ctl([
          "machine",
          "create",
          "-d",
          "qemu",
          "--qemu-accel",
          "tcg",
          "--qemu-network-cidr",
          `${GATEWAY}/24`,
          "--qemu-bridge",
          BRIDGE,
          "--qemu-disk-size",
          "4096",
          ...net,
          name,
        ]);
      const [created, created2, other] = await Promise.all([
        createVm(vm),
        createVm(vm2),
        ctl(["machine", "create", "-d", "netns", "--netns-cidr", `${GATEWAY}/24`, "--netns-bridge", BRIDGE, ...net, nm]),
      ]);
      expect(created.code, created.stderr).toBe(0);
      expect(created.stderr).toContain("booting with TCG (software emulation), as asked");
      expect(created2.code, created2.stderr).toBe(0);
      expect(other.code, other.stderr).toBe(0);
      phase("machines created");
      const ls = await ctl(["machine", "ls", "--format", "{{.Name}} {{.DriverName}} {{.State}}"]);
      expect(ls.stdout.split("\n").filter(Boolean).sort()).toEqual([`${nm} netns READY`, `${vm} qemu READY`, `${vm2} qemu READY`]);

      const ip = (await ctl(["machine", "ip", vm])).stdout.trim();
      expect(ip.startsWith(`${SUBNET.prefix}.`)).toBe(true);
      expect(ip).not.toBe((await ctl(["machine", "ip", nm])).stdout.trim());
      const dockerEnv = { ...env, ...parseExports((await ctl(["machine", "env", vm])).stdout) };
      expect(dockerEnv.DOCKER_HOST).toBe(`tcp://${ip}:2376`);

      const hello = await run("docker", ["run", "--rm", image, "echo", "hello", "world"], dockerEnv, 300_000);
      expect(hello, hello.stderr).toMatchObject({ code: 0, stdout: "hello world\n" });
      phase("docker run on a VM");
      const web = await run("docker", ["run", "-d", "--name", "web", "-p", "8000:80", image, "httpd", "-f", "-p", "80"], dockerEnv);
      expect(web.code, web.stderr).toBe(0);
      await expect
        .poll(async () => (await fetch(`http://${ip}:8000/`, { signal: AbortSignal.timeout(10_000) }).catch(() => undefined))?.status, {
          timeout: 60_000,
          interval: 1000,
        })
        .toBeOneOf([200, 404]); // busybox httpd without an index page: 404 is its answer
      expect((await run("docker", ["rm", "-f", "web"], dockerEnv)).code).toBe(0);

      // A service over the three machines; each machine's ingress port answers. A machine is
      // READY once its agent answers; its node registers with the agent's first beat, and the
      // scheduler spreads over the nodes there are (as swarm, it moves nothing when one joins).
      await expect
        .poll(
          async () => {
            const nodes = JSON.parse((await ctl(["node", "ls", "--json"])).stdout || "[]") as { status: string }[];
            return nodes.filter((n) => n.status === "ready").length;
          },
          { timeout: 120_000, interval: 1000 },
        )
        .toBe(3);
      const svc = await ctl([
        "service",
        "create",
        "--name",
        "spread",
        "--replicas",
        "3",
        "--publish",
        "8080:80",
        image,
        "httpd",
        "-f",
        "-p",
        "80",
      ]);
      expect(svc.code, svc.stderr).toBe(0);
      phase("service created");
      const spread = expect
        .poll(
          async () => {
            const ps = await ctl(["service", "ps", "spread", "--json"]);
            const tasks = JSON.parse(ps.stdout || "[]") as { state: string; desiredState: string; nodeHostname: string | null }[];
            return new Set(tasks.filter((t) => t.state === "RUNNING" && t.desiredState === "running").map((t) => t.nodeHostname)).size;
          },
          { timeout: 300_000, interval: 2000 },
        )
        .toBe(3);
      await spread.catch(async (e: unknown) => {
        console.log(await placementReport("spread", ctl, api.db.url, warnings.lines));
        for (const m of [vm, vm2])
          console.log(`agent log of ${m}:\n${(await ctl(["machine", "ssh", m, "tail", "-n", "60", AGENT_LOG])).stdout}`);
        throw e;
      });
      phase("one task running on each machine");
      for (const machine of [vm, vm2, nm]) {
        const at = (await ctl(["machine", "ip", machine])).stdout.trim();
        await expect
          .poll(async () => (await fetch(`http://${at}:8080/`, { signal: AbortSignal.timeout(10_000) }).catch(() => undefined))?.status, {
            timeout: 60_000,
            interval: 1000,
          })
          .toBeOneOf([200, 404]);
      }
      expect((await ctl(["service", "rm", "spread"])).code).toBe(0);
      phase("each machine's ingress port answered");
      // The second VM has served its purpose: an idle TCG guest still takes CPU the first one's
      // stop/start needs. Its removal is checked with the others' at the end.
      const rm2 = await ctl(["machine", "rm", "-y", vm2]);
      expect(rm2.code, rm2.stderr).toBe(0);

      const write = await run("docker", ["run", "--rm", "-v", "kept:/data", image, "sh", "-c", "echo kept > /data/f"], dockerEnv);
      expect(write.code, write.stderr).toBe(0);

      expect((await ctl(["machine", "stop", vm])).code).toBe(0);
      expect((await ctl(["machine", "status", vm])).stdout).toBe("Stopped\n");
      expect(qemuUnder(join(base, "data", "machines", vm))).toEqual([]);
      const started = await ctl(["machine", "start", vm]);
      expect(started.code, started.stderr).toBe(0);
      const read = await run("docker", ["run", "--rm", "-v", "kept:/data", image, "cat", "/data/f"], dockerEnv, 300_000);
      expect(read, read.stderr).toMatchObject({ code: 0, stdout: "kept\n" });

      phase("stop/start kept the volume");
      const rm = await ctl(["machine", "rm", "-y", vm, nm]);
      expect(rm.code, rm.stderr).toBe(0);
      expect((await ctl(["machine", "ls", "-q"])).stdout).toBe("");
      expect(qemuUnder(base)).toEqual([]);
      const namespaces = execFileSync("ip", ["netns", "list"], { encoding: "utf8" });
      expect(namespaces).not.toContain(qemuNetnsName(vm));
      expect(namespaces).not.toContain(qemuNetnsName(vm2));
      expect(namespaces).not.toContain(`flt-${nm}`);
      expect(execFileSync("ip", ["-o", "link"], { encoding: "utf8" })).not.toContain(qemuVethName(vm));
      expect(execFileSync("ip", ["-o", "link"], { encoding: "utf8" })).not.toContain(qemuVethName(vm2));
      expect(existsSync(join(base, "data", "machines", vm))).toBe(false);
      expect(existsSync(join(base, "data", "machines", vm2))).toBe(false);
    },
  );
});
