// The qemu driver's pure parts: options, the accelerator choice, the seed on the kernel command
// line, qemu's arguments; and preCreateCheck refusing bad input without leaving anything behind.
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import {
  chooseAccel,
  createExecRunner,
  getDriver,
  GUEST_IMAGE_VERSION,
  kernelCommandLine,
  locateGuestImage,
  macAddress,
  parseQemuOptions,
  qemuArgs,
} from "@flotilla/drivers";

const repo = resolve(__dirname, "../../..");

describe("qemu options", () => {
  it("has docker-machine-like defaults", () => {
    const o = parseQemuOptions({});
    expect(o).toMatchObject({
      cpus: 1,
      memoryMb: 1024,
      diskMb: 20000,
      accel: "auto",
      bridge: "flmach0",
      sshUser: "root",
      image: undefined,
    });
    expect(o.cidr.text).toBe("198.18.0.1/16");
  });

  it("names the flag in every refusal", () => {
    expect(() => parseQemuOptions({ "qemu-accel": "hvf" })).toThrow('--qemu-accel must be one of auto, kvm, tcg, got "hvf"');
    expect(() => parseQemuOptions({ "qemu-network-cidr": "10.0.0.1/24" })).toThrow(
      "--qemu-network-cidr must lie inside 198.18.0.0/15, got 10.0.0.1/24",
    );
    expect(() => parseQemuOptions({ "qemu-memory": "lots" })).toThrow("--qemu-memory must be an integer number of MB");
    expect(() => parseQemuOptions({ "qemu-cpu-count": 0 })).toThrow("--qemu-cpu-count must be at least 1");
    expect(() => parseQemuOptions({ "qemu-ssh-user": "Root Admin" })).toThrow("--qemu-ssh-user must be a user name");
    expect(() => parseQemuOptions({ "qemu-disk": 5 })).toThrow("unknown option --qemu-disk for the qemu driver");
  });
});

describe("choosing the accelerator", () => {
  it.each([
    ["auto", true, false, { accel: "kvm", fallback: true }],
    ["auto", true, true, { accel: "tcg", fallback: false }],
    ["auto", false, false, { accel: "tcg", fallback: false }],
    ["kvm", true, true, { accel: "kvm", fallback: false }],
    ["tcg", true, false, { accel: "tcg", fallback: false }],
  ] as const)("%s with kvm usable=%s, hung before=%s", (choice, kvmUsable, kvmHangs, want) => {
    expect(chooseAccel(choice, { kvmUsable, kvmHangs })).toMatchObject(want);
  });

  it("refuses kvm without a usable /dev/kvm", () => {
    expect(chooseAccel("kvm", { kvmUsable: false, kvmHangs: false })).toEqual({
      error: "--qemu-accel kvm: /dev/kvm is missing or not usable by this process; use --qemu-accel tcg or auto",
    });
  });
});

describe("seeding and launching the guest", () => {
  it("puts the seed on the kernel command line, the key base64-encoded (no spaces)", () => {
    const key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIE flotilla@vm1";
    const line = kernelCommandLine({
      hostname: "vm1",
      ip: "198.18.0.5",
      prefixLength: 16,
      gateway: "198.18.0.1",
      user: "docker",
      publicKey: key,
    });
    expect(line).toContain("root=/dev/vda rw console=ttyS0");
    expect(line).toContain("flotilla.hostname=vm1 flotilla.ip=198.18.0.5/16 flotilla.gw=198.18.0.1 flotilla.user=docker");
    const encoded = /flotilla\.key=(\S+)/.exec(line)![1];
    expect(Buffer.from(encoded, "base64").toString()).toBe(key);
  });

  it("gives each machine a stable locally administered MAC", () => {
    expect(macAddress("vm1")).toMatch(/^52:54:00(:[0-9a-f]{2}){3}$/);
    expect(macAddress("vm1")).toBe(macAddress("vm1"));
    expect(macAddress("vm1")).not.toBe(macAddress("vm2"));
  });

  it("runs qemu headless and daemonized, with a tap, a pid file, QMP and the console in a file; no user-mode network", () => {
    const args = qemuArgs({
      machine: "vm1",
      accel: "tcg",
      cpus: 2,
      memoryMb: 512,
      disk: "/s/disk.qcow2",
      kernel: "/g/vmlinuz",
      initrd: "/g/initrd.img",
      cmdline: "root=/dev/vda",
      tap: "tap0",
      mac: "52:54:00:01:02:03",
      qmpSocket: "/run/q.qmp",
      pidFile: "/s/qemu.pid",
      consoleLog: "/s/console.log",
    });
    const joined = args.join(" ");
    expect(joined).toContain("-machine q35,accel=tcg -cpu max -smp 2 -m 512 -nodefaults");
    expect(joined).toContain(
      "-netdev tap,id=net0,ifname=tap0,script=no,downscript=no -device virtio-net-pci,netdev=net0,mac=52:54:00:01:02:03",
    );
    expect(joined).toContain("-qmp unix:/run/q.qmp,server=on,wait=off -pidfile /s/qemu.pid -daemonize");
    expect(joined).toContain("-serial file:/s/console.log");
    expect(joined).not.toMatch(/-netdev user|hostfwd|-nic /);
  });

  it("boots the image's uncompressed kernel (PVH) when it has one, else vmlinuz", async () => {
    const dir = mkdtempSync(join(tmpdir(), "flotilla-qemu-image-"));
    try {
      for (const f of ["disk.qcow2", "vmlinuz", "initrd.img"]) writeFileSync(join(dir, f), "x");
      writeFileSync(join(dir, "manifest.json"), JSON.stringify({ version: "3", kernel: "6.1", diskMb: 640, minMemoryMb: 256 }));
      expect((await locateGuestImage(dir)).kernel).toBe(join(dir, "vmlinuz"));
      writeFileSync(join(dir, "vmlinux"), "x");
      expect((await locateGuestImage(dir)).kernel).toBe(join(dir, "vmlinux"));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("matches the guest image version the build script makes", () => {
    const script = readFileSync(join(repo, "scripts/build-guest-image.sh"), "utf8");
    expect(/^version=(\S+)$/m.exec(script)?.[1]).toBe(GUEST_IMAGE_VERSION);
  });
});

describe.skipIf(process.getuid?.() !== 0)("qemu preCreateCheck refuses bad input and leaves nothing behind", () => {
  const base = mkdtempSync(join(tmpdir(), "flotilla-qemu-check-"));
  const image = join(base, "image");
  mkdirSync(image);
  for (const f of ["disk.qcow2", "vmlinuz", "initrd.img"]) writeFileSync(join(image, f), "x");
  writeFileSync(join(image, "manifest.json"), JSON.stringify({ version: "1", kernel: "6.1", diskMb: 512, minMemoryMb: 256 }));
  afterAll(() => rmSync(base, { recursive: true, force: true }));
  const factory = getDriver("qemu");
  const haveQemu = existsSync("/usr/bin/qemu-system-x86_64") && existsSync("/usr/bin/qemu-img");

  const check = async (raw: Record<string, string | number>) => {
    const storeDir = join(base, "machines", "bad");
    const d = factory.bind(
      { machineName: "bad", storeDir, runner: createExecRunner(), lockDir: join(base, "locks") },
      factory.parseOptions(raw),
    );
    const message = await d.preCreateCheck().then(
      () => "passed",
      (e: Error) => e.message,
    );
    expect(existsSync(storeDir)).toBe(false);
    expect(existsSync(join(base, "locks"))).toBe(false);
    return message;
  };

  it.skipIf(!haveQemu)("names the option: missing image, disk smaller than the image, memory below its minimum", async () => {
    expect(await check({ "qemu-image": join(base, "nope") })).toBe(`--qemu-image ${join(base, "nope")}: no such file or directory`);
    rmSync(join(image, "initrd.img"));
    expect(await check({ "qemu-image": image })).toBe(`--qemu-image ${image}: initrd.img is missing (not a Flotilla guest image?)`);
    writeFileSync(join(image, "initrd.img"), "x");
    expect(await check({ "qemu-image": image, "qemu-disk-size": 400 })).toBe(
      "--qemu-disk-size 400 MB is smaller than the guest image (512 MB)",
    );
    expect(await check({ "qemu-image": image, "qemu-memory": 128 })).toBe(
      "--qemu-memory 128 MB is below the guest image's minimum of 256 MB",
    );
    expect(await check({ "qemu-image": image, "qemu-accel": "tcg" })).toBe("passed");
  });

  it.skipIf(!haveQemu || existsSync("/dev/kvm"))("refuses --qemu-accel kvm without /dev/kvm", async () => {
    expect(await check({ "qemu-image": image, "qemu-accel": "kvm" })).toContain("--qemu-accel kvm: /dev/kvm is missing");
  });
});
