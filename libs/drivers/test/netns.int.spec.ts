// The netns driver against the real kernel: two machines on one bridge, SSH into each, traffic
// between them, stop/start (which must not touch other processes), and a remove that leaves no namespace, veth, process or mount.
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, readlinkSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createExecRunner, getDriver, MachineState, sshConnect, type Driver } from "@flotilla/drivers";
import { machineProcesses, pinMountNs, vethName, type ProcessIdentity } from "../src/netns-host";
import { testBridge } from "../../../test/support/leftovers";

const root = process.getuid?.() === 0;
const suffix = process.pid.toString(36);
const bridge = testBridge("flmt");
const cidr = "198.19.77.1/24";

function links(): string {
  return execFileSync("ip", ["-o", "link"], { encoding: "utf8" });
}
function netnsList(): string {
  return execFileSync("ip", ["netns", "list"], { encoding: "utf8" });
}

describe.skipIf(!root)("netns driver (real kernel)", () => {
  const base = mkdtempSync(join(tmpdir(), "flotilla-netns-"));
  const runner = createExecRunner();
  const factory = getDriver("netns");
  const names = [`nt-a-${suffix}`, `nt-b-${suffix}`];
  const machines: Driver[] = names.map((name) =>
    factory.bind(
      { machineName: name, storeDir: join(base, "machines", name), runner, lockDir: join(base, "locks"), timing: { stopTimeoutMs: 3000 } },
      factory.parseOptions({ "netns-cidr": cidr, "netns-bridge": bridge }),
    ),
  );

  const sshdOf = (name: string) =>
    (JSON.parse(readFileSync(join(base, "machines", name, "netns.json"), "utf8")) as { sshd?: ProcessIdentity }).sshd;
  /** Polls `read` until `ok` holds for its value (errors count as not yet), for at most 10 s. */
  async function until<T>(read: () => T, ok: (v: T) => boolean): Promise<T> {
    const end = Date.now() + 10_000;
    for (;;) {
      try {
        const v = read();
        if (ok(v)) return v;
      } catch {
        // not there yet
      }
      if (Date.now() > end) throw new Error("timed out");
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  async function sh(d: Driver, command: string): Promise<string> {
    const ep = await d.getSSH();
    // The host key the driver generated is pinned: the machine's sshd must present exactly it.
    expect(ep.hostKey).toMatch(/^ssh-ed25519 \S+ flotilla-host@/);
    const conn = await sshConnect({
      host: ep.host,
      port: ep.port,
      user: ep.user,
      privateKey: readFileSync(ep.keyPath),
      hostKey: ep.hostKey,
    });
    try {
      const res = await conn.exec(command, { timeoutMs: 10_000 });
      expect(res.code, res.stderr).toBe(0);
      return res.stdout;
    } finally {
      conn.close();
    }
  }

  beforeAll(async () => {
    for (const m of machines) {
      await m.preCreateCheck();
      await m.create();
    }
  }, 60_000);

  afterAll(async () => {
    for (const m of machines) await m.remove().catch(() => undefined);
    rmSync(base, { recursive: true, force: true });
  });

  it("rejects option values outside the test range and unknown flags", () => {
    expect(() => factory.parseOptions({ "netns-cidr": "10.0.0.1/24" })).toThrow("--netns-cidr must lie inside 198.18.0.0/15");
    expect(() => factory.parseOptions({ "netns-cidr": "198.18.0.0/16" })).toThrow("--netns-cidr must name the host's address");
    expect(() => factory.parseOptions({ "netns-bridge": "a-very-long-bridge-name" })).toThrow("--netns-bridge");
    expect(() => factory.parseOptions({ "netns-color": "red" })).toThrow("unknown option --netns-color");
  });

  it("gives each machine its own address, host name and data dir, reachable over SSH", async () => {
    const [a, b] = machines;
    const ipA = await a.getIP();
    const ipB = await b.getIP();
    expect(ipA).not.toBe(ipB);
    expect(ipA).toMatch(/^198\.19\.77\.\d+$/);
    expect(await a.getState()).toBe(MachineState.Running);
    expect(await a.getURL()).toBe(`tcp://${ipA}:2376`);
    expect(await sh(a, "ip -4 addr show dev eth0")).toContain(`${ipA}/24`);
    expect((await sh(b, "hostname")).trim()).toBe(names[1]);
    // Each sees its own /var/lib/flotilla-agent.
    await sh(a, "echo a > /var/lib/flotilla-agent/who");
    expect(await sh(b, "cat /var/lib/flotilla-agent/who 2>/dev/null || echo none")).toBe("none\n");
    expect(await sh(a, "cat /var/lib/flotilla-agent/who")).toBe("a\n");
    expect(existsSync("/var/lib/flotilla-agent/who")).toBe(false);
  });

  it("carries TCP between two machines over the bridge", async () => {
    const [a, b] = machines;
    const ipB = await b.getIP();
    // A one-shot listener on b; a retries until it is up, then sends a line. The listener hands
    // the connection to `cat`, which reads until a closes it: nc itself would quit as soon as its
    // own stdin (the SSH channel, at EOF) ends, possibly before a's line arrives.
    const got = "/var/lib/flotilla-agent/tcp-from-a";
    const listen = sh(b, `timeout 20 busybox nc -l -p 7777 -e sh -c 'cat > ${got}'`);
    await sh(a, `for i in $(seq 100); do echo ping-from-a | busybox nc ${ipB} 7777 && exit 0; sleep 0.1; done; exit 1`);
    await listen;
    expect(await sh(b, `cat ${got}`)).toBe("ping-from-a\n");
  });

  it("stops (no process left), reports Stopped, starts again", async () => {
    const a = machines[0];
    const mountNs = (await pinMountNs(sshdOf(names[0])))!;
    await sh(a, "setsid sleep 1000 >/dev/null 2>&1 < /dev/null &");
    expect((await machineProcesses(`/run/netns/flt-${names[0]}`, mountNs.ns)).length).toBeGreaterThan(0);
    await a.stop();
    expect(await a.getState()).toBe(MachineState.Stopped);
    expect(await machineProcesses(`/run/netns/flt-${names[0]}`, mountNs.ns)).toEqual([]);
    await mountNs.release();
    await a.start();
    expect(await a.getState()).toBe(MachineState.Running);
    expect((await sh(a, "hostname")).trim()).toBe(names[0]);
    await a.kill();
    expect(await a.getState()).toBe(MachineState.Stopped);
    await a.start();
    expect(await a.getState()).toBe(MachineState.Running);
  });

  it("starting a killed machine again kills none of another's processes, even one whose namespace took the old one's number", async () => {
    // A namespace's inode number goes to the next namespace made on the host once the last
    // process leaves it: after a machine is killed, a container started elsewhere (its
    // replacement, say) may get the number the dead machine's mount namespace had.
    const a = machines[0];
    const old = readlinkSync(`/proc/${sshdOf(names[0])!.pid}/ns/mnt`);
    await a.kill();
    const others: ChildProcess[] = [];
    try {
      let heir: ChildProcess | undefined;
      for (let i = 0; i < 20 && !heir; i++) {
        const p = spawn("unshare", ["--mount", "--propagation", "private", "sleep", "600"], { stdio: "ignore" });
        others.push(p);
        const ns = await until(
          () => readlinkSync(`/proc/${p.pid}/ns/mnt`),
          (v) => v !== readlinkSync("/proc/self/ns/mnt"),
        );
        if (ns === old) heir = p;
      }
      expect(heir, `no new mount namespace got ${old} back`).toBeDefined();
      await a.start();
      expect(await a.getState()).toBe(MachineState.Running);
      for (const p of others) expect(p.exitCode === null && p.signalCode === null, `pid ${p.pid} was killed (${p.signalCode})`).toBe(true);
    } finally {
      for (const p of others) p.kill("SIGKILL");
    }
  });

  it("comes back after its namespace vanished (a host reboot), with the same address", async () => {
    const b = machines[1];
    const ip = await b.getIP();
    await b.kill();
    execFileSync("ip", ["link", "del", vethName(names[1])]);
    execFileSync("ip", ["netns", "del", `flt-${names[1]}`]);
    expect(await b.getState()).toBe(MachineState.Stopped);
    await b.start();
    expect(await b.getState()).toBe(MachineState.Running);
    expect(await b.getIP()).toBe(ip);
    expect(await sh(b, "ip -4 addr show dev eth0")).toContain(`${ip}/24`);
  });

  it("removes everything: namespace, veth, processes, mounts, store, bridge", async () => {
    for (const m of machines) await m.remove();
    for (const name of names) {
      expect(netnsList()).not.toContain(`flt-${name}`);
      expect(links()).not.toContain(vethName(name));
      expect(existsSync(join(base, "machines", name))).toBe(false);
      expect(await machines[0].getState()).toBe(MachineState.NotFound);
    }
    expect(links()).not.toContain(bridge);
    expect(existsSync(join(base, "locks", `netns-${bridge}-ips.json`))).toBe(false);
    expect(readFileSync("/proc/self/mountinfo", "utf8")).not.toContain(base);
    const ps = execFileSync("ps", ["-eo", "args"], { encoding: "utf8" });
    expect(ps).not.toContain(join(base, "machines"));
    // remove is idempotent.
    await machines[0].remove();
  });
});
