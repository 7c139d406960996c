// The qemu driver with a real VM booted from the Flotilla guest image under TCG (software
// emulation, which works everywhere; KVM hangs on this nested host): the seed applied, stop by
// ACPI keeping the disk, kill, a VM that outlives the driver object, and a remove that leaves
// no process, namespace, veth, socket or file.
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  createExecRunner,
  getDriver,
  MachineState,
  qemuNetnsName,
  qemuVethName,
  sshConnect,
  type Driver,
  type DriverEvent,
} from "@flotilla/drivers";
import { canBootVms, ensureGuestImage } from "../../../test/support/guest-image";
import { testBridge } from "../../../test/support/leftovers";

const suffix = process.pid.toString(36);
const bridge = testBridge("flqt");
const cidr = "198.19.96.1/24";

describe.skipIf(!canBootVms())("qemu driver (real VM, TCG)", () => {
  const base = mkdtempSync(join(tmpdir(), "flotilla-qemu-"));
  const name = `qt-${suffix}`;
  const storeDir = join(base, "machines", name);
  const factory = getDriver("qemu");
  const events: DriverEvent[] = [];
  const bind = () =>
    factory.bind(
      {
        machineName: name,
        storeDir,
        runner: createExecRunner(),
        lockDir: join(base, "locks"),
        progress: (e) => events.push(e),
        timing: { stopTimeoutMs: 60_000 },
      },
      factory.parseOptions({
        "qemu-network-cidr": cidr,
        "qemu-bridge": bridge,
        "qemu-accel": "tcg",
        "qemu-memory": 512,
        "qemu-disk-size": 2048,
      }),
    );
  let vm: Driver;

  async function sh(command: string): Promise<string> {
    const ep = await vm.getSSH();
    const conn = await sshConnect({ host: ep.host, port: ep.port, user: ep.user, privateKey: readFileSync(ep.keyPath), timeoutMs: 30_000 });
    try {
      const res = await conn.exec(command, { timeoutMs: 30_000 });
      expect(res.code, res.stderr).toBe(0);
      return res.stdout;
    } finally {
      conn.close();
    }
  }
  /** Pids of qemu processes running this machine's disk. */
  const qemuProcesses = () =>
    readdirSync("/proc")
      .filter((d) => /^\d+$/.test(d))
      .filter((pid) => {
        const argv = (() => {
          try {
            return readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
          } catch {
            return [];
          }
        })();
        return argv[0]?.endsWith("qemu-system-x86_64") && argv.some((a) => a.includes(`${storeDir}/disk.qcow2`));
      })
      .join(" ");

  beforeAll(async () => {
    ensureGuestImage();
    vm = bind();
    await vm.preCreateCheck();
    await vm.create();
  }, 600_000);

  afterAll(async () => {
    await vm?.remove().catch(() => undefined);
    rmSync(base, { recursive: true, force: true });
  });

  it("boots the guest with its seed: host name, address, key, cgroup v2, the grown disk", async () => {
    expect(await vm.getState()).toBe(MachineState.Running);
    const ip = await vm.getIP();
    expect(ip).toBe("198.19.96.2");
    expect(events.map((e) => e.message)).toContain("booting with TCG (software emulation), as asked");
    expect((await sh("hostname")).trim()).toBe(name);
    expect(await sh("ip -4 -o addr show dev eth0")).toContain(`inet ${ip}/24`);
    expect(await sh("ip route show default")).toContain("via 198.19.96.1");
    expect(await sh("stat -f -c %T /sys/fs/cgroup")).toBe("cgroup2fs\n");
    // Grown from the image's 512 MB towards 2048 MB (in the background, so wait for it).
    await expect
      .poll(async () => Number((await sh("df -m --output=size / | tail -n1")).trim()), { timeout: 60_000, interval: 1000 })
      .toBeGreaterThan(1500);
    // No outward route or address besides the bridge.
    expect((await sh("ip -4 -o addr show | grep -v ' lo ' | wc -l")).trim()).toBe("1");
  });

  it("stops with the ACPI power button, keeps the disk, and starts again", async () => {
    await sh("echo kept > /root/marker && sync");
    events.length = 0;
    await vm.stop();
    expect(events.map((e) => e.message)).toEqual(["pressing the ACPI power button"]);
    expect(await vm.getState()).toBe(MachineState.Stopped);
    expect(qemuProcesses()).toBe("");
    await vm.start();
    expect(await vm.getState()).toBe(MachineState.Running);
    expect(await sh("cat /root/marker")).toBe("kept\n");
  }, 300_000);

  it("is found running by a new driver object (the VM outlives the control plane), and killed", async () => {
    const again = bind();
    expect(await again.getState()).toBe(MachineState.Running);
    await again.kill();
    expect(await again.getState()).toBe(MachineState.Stopped);
    expect(qemuProcesses()).toBe("");
  }, 60_000);

  it("refuses a second create of the same name without touching the first", async () => {
    await expect(bind().preCreateCheck()).rejects.toThrow(`qemu ${name}: a VM of this name already exists`);
    expect(existsSync(join(storeDir, "disk.qcow2"))).toBe(true);
  });

  it("remove leaves no process, namespace, veth, bridge, socket or file", async () => {
    await vm.start();
    await vm.remove();
    expect(await vm.getState()).toBe(MachineState.NotFound);
    expect(qemuProcesses()).toBe("");
    expect(execFileSync("ip", ["netns", "list"], { encoding: "utf8" })).not.toContain(qemuNetnsName(name));
    const links = execFileSync("ip", ["-o", "link"], { encoding: "utf8" });
    expect(links).not.toContain(qemuVethName(name));
    expect(links).not.toContain(`${bridge}:`);
    expect(existsSync(storeDir)).toBe(false);
    expect(readdirSync(join(base, "locks")).filter((f) => f.endsWith(".json"))).toEqual([]);
    expect(existsSync(`/run/flotilla-qemu/${createHash("sha256").update(storeDir).digest("hex").slice(0, 16)}.qmp`)).toBe(false);
  }, 300_000);
});
