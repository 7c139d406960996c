// Pure decisions of the qemu driver: which accelerator, the kernel command line that seeds the
// guest, and qemu's argument list. No I/O here; qemu.driver.ts acts on them.
import { createHash } from "node:crypto";

export type QemuAccel = "kvm" | "tcg";
export type QemuAccelChoice = "auto" | QemuAccel;

export interface AccelFacts {
  /** /dev/kvm exists and this process may open it read-write. */
  kvmUsable: boolean;
  /** A KVM guest already hung at boot on this host (the watchdog's marker file). */
  kvmHangs: boolean;
}

export interface AccelDecision {
  accel: QemuAccel;
  /** With "auto" on KVM: fall back to TCG when the guest does not come up. */
  fallback: boolean;
  /** What to tell the user about the choice. */
  reason: string;
}

/**
 * The accelerator to boot with, or an error message when the choice cannot be met.
 * auto: KVM when it is usable and has not hung here before (then with the TCG fallback), else TCG.
 */
export function chooseAccel(choice: QemuAccelChoice, facts: AccelFacts): AccelDecision | { error: string } {
  if (choice === "tcg") return { accel: "tcg", fallback: false, reason: "TCG (software emulation), as asked" };
  if (choice === "kvm") {
    if (!facts.kvmUsable)
      return { error: "--qemu-accel kvm: /dev/kvm is missing or not usable by this process; use --qemu-accel tcg or auto" };
    return { accel: "kvm", fallback: false, reason: "KVM, as asked" };
  }
  if (!facts.kvmUsable) return { accel: "tcg", fallback: false, reason: "TCG (software emulation): /dev/kvm is missing or not usable" };
  if (facts.kvmHangs)
    return { accel: "tcg", fallback: false, reason: "TCG (software emulation): a KVM guest hung at boot on this host before" };
  return { accel: "kvm", fallback: true, reason: "KVM (falls back to TCG if the guest does not boot)" };
}

export interface GuestSeed {
  hostname: string;
  ip: string;
  prefixLength: number;
  gateway: string;
  user: string;
  /** The authorized_keys line. */
  publicKey: string;
}

/** The guest's kernel command line: root disk, serial console, and the seed flotilla-seed reads. */
export function kernelCommandLine(seed: GuestSeed): string {
  return [
    "root=/dev/vda",
    "rw",
    "console=ttyS0",
    "net.ifnames=0",
    "quiet",
    // No fsck of the root file system in the initramfs (seconds under TCG): it is ext4 with a
    // journal, replayed at mount after an unclean stop.
    "fastboot",
    // The image carries SATA/IDE, SCSI, e1000 and Hyper-V drivers for other hypervisors; the
    // initramfs loads them all, and under TCG loading and probing them costs seconds. The PS/2
    // mouse probe too. qemu's VM has virtio disk and network only.
    "modprobe.blacklist=ahci,ata_piix,sd_mod,virtio_scsi,e1000,hv_vmbus,hv_netvsc,hv_storvsc,psmouse",
    // The kernel's crypto self-tests at boot: a second or more of emulated CPU.
    "cryptomgr.notests",
    `flotilla.hostname=${seed.hostname}`,
    `flotilla.ip=${seed.ip}/${seed.prefixLength}`,
    `flotilla.gw=${seed.gateway}`,
    `flotilla.user=${seed.user}`,
    // The command line splits on spaces; the key line has two.
    `flotilla.key=${Buffer.from(seed.publicKey).toString("base64")}`,
  ].join(" ");
}

/** A stable, locally administered MAC for the machine (qemu's 52:54:00 prefix). */
export function macAddress(machine: string): string {
  const h = createHash("sha256").update(machine).digest();
  return ["52", "54", "00", h[0], h[1], h[2]].map((b) => (typeof b === "number" ? b.toString(16).padStart(2, "0") : b)).join(":");
}

export interface QemuLaunch {
  machine: string;
  accel: QemuAccel;
  cpus: number;
  memoryMb: number;
  disk: string;
  kernel: string;
  initrd: string;
  cmdline: string;
  tap: string;
  mac: string;
  qmpSocket: string;
  pidFile: string;
  consoleLog: string;
}

/** qemu-system-x86_64's arguments: a headless, daemonized VM with only what the guest uses. */
export function qemuArgs(l: QemuLaunch): string[] {
  return [
    "-name",
    `flotilla-${l.machine},process=flotilla-qemu`,
    "-machine",
    `q35,accel=${l.accel}`,
    "-cpu",
    "max",
    "-smp",
    String(l.cpus),
    "-m",
    String(l.memoryMb),
    "-nodefaults",
    "-no-user-config",
    "-display",
    "none",
    "-kernel",
    l.kernel,
    "-initrd",
    l.initrd,
    "-append",
    l.cmdline,
    "-drive",
    `file=${l.disk},if=virtio,format=qcow2,discard=unmap`,
    "-netdev",
    `tap,id=net0,ifname=${l.tap},script=no,downscript=no`,
    "-device",
    `virtio-net-pci,netdev=net0,mac=${l.mac}`,
    "-device",
    "virtio-rng-pci",
    // The serial console goes to a file: the boot watchdog and failed creates read its tail.
    "-serial",
    `file:${l.consoleLog}`,
    "-qmp",
    `unix:${l.qmpSocket},server=on,wait=off`,
    "-pidfile",
    l.pidFile,
    "-daemonize",
  ];
}

/** The last `lines` non-empty lines of a console log, for error messages. */
export function consoleTail(log: string, lines = 8): string {
  return log
    .replace(/\r/g, "")
    .split("\n")
    .map((l) => l.trimEnd())
    .filter(Boolean)
    .slice(-lines)
    .join(" | ");
}

/** Marker flotilla-seed writes to the console once userland runs: the boot watchdog's "it booted". */
export const SEED_MARKER = "flotilla-seed:";
