// The qemu driver: a real virtual machine booted from the Flotilla guest image
// (scripts/build-guest-image.sh) with qemu-system-x86_64, KVM when it works and TCG otherwise.
// qemu runs daemonized inside the machine's own network namespace (qemu-net.ts), with a pid
// file, a QMP socket and its serial console in a file, so the VM outlives the control plane.
// The guest is seeded on the kernel command line (host name, address, SSH user and key).
// Needs root, qemu-system-x86, qemu-utils, iproute2 and util-linux (nsenter).
import { access, constants, mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { createHash } from "node:crypto";
import { join } from "node:path";
import { ConflictError, InvalidError, NotFoundError, UnavailableError } from "@flotilla/core";
import { BaseDriver } from "./base.driver";
import { commandFailed } from "./command-runner";
import { MachineState, type DriverFactory, type SshEndpoint } from "./driver";
import { withHostLock } from "./lock";
import { KEY_FILE, withPinnedHostKey, writeMachineKey } from "./machine-files";
import { formatDuration, hostPort, probeTcp } from "./net";
import { allocateIp, releaseIp, removeBridgeIfUnused } from "./netns-host";
import { pollUntil, sleep } from "./poll";
import { defaultLockDir, ensurePrivateDir } from "./private-dir";
import { locateGuestImage, type GuestImage } from "./qemu-image";
import { plumbQemuNetwork, QEMU_TAP, qemuNetnsName, unplumbQemuNetwork } from "./qemu-net";
import { chooseAccel, consoleTail, kernelCommandLine, macAddress, qemuArgs, SEED_MARKER, type QemuAccel } from "./qemu-plan";
import { qmpCommand } from "./qmp";
import { parseQemuOptions, qemuOptionSpecs, type QemuOptions } from "./qemu-options";

export { parseQemuOptions, qemuOptionSpecs, type QemuOptions };

interface QemuState {
  ip: string;
  prefixLength: number;
  gateway: string;
  bridge: string;
  mac: string;
  user: string;
  cpus: number;
  memoryMb: number;
  kernel: string;
  initrd: string;
  /** The accelerator the VM last booted with. */
  accel: QemuAccel;
}

const STATE_FILE = "qemu.json";
const DISK_FILE = "disk.qcow2";
const PID_FILE = "qemu.pid";
const CONSOLE_LOG = "console.log";
/** How long a KVM guest gets to reach userland before auto falls back to TCG. */
const KVM_WATCHDOG_MS = 30_000;
const KVM_HANGS_FILE = "qemu-kvm-hangs";

export class QemuDriver extends BaseDriver<QemuOptions> {
  private readonly lockDir: string;

  constructor(ctx: ConstructorParameters<typeof BaseDriver<QemuOptions>>[1], options: QemuOptions) {
    super("qemu", ctx, options);
    this.lockDir = ctx.lockDir ?? defaultLockDir();
  }

  private file(name: string): string {
    return join(this.ctx.storeDir, name);
  }
  /** Unix socket paths are limited to 108 bytes; the store path may be longer. */
  private get qmpSocket(): string {
    return join("/run/flotilla-qemu", `${createHash("sha256").update(this.ctx.storeDir).digest("hex").slice(0, 16)}.qmp`);
  }
  private get allocationFile(): string {
    return join(this.lockDir, `netns-${this.options.bridge}-ips.json`);
  }
  private get kvmHangsFile(): string {
    return join(this.lockDir, KVM_HANGS_FILE);
  }
  /** The same host lock as netns machines on this bridge: one allocator for both. */
  private lock<T>(fn: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    return withHostLock(this.lockDir, `netns-${this.options.bridge}`, fn, { signal, purpose: `qemu ${this.machineName}` });
  }

  private async readState(): Promise<QemuState | undefined> {
    try {
      return JSON.parse(await readFile(this.file(STATE_FILE), "utf8")) as QemuState;
    } catch {
      return undefined;
    }
  }
  private async writeState(state: QemuState): Promise<void> {
    await writeFile(this.file(STATE_FILE), JSON.stringify(state, null, 2) + "\n");
  }
  private async requireState(): Promise<QemuState> {
    const state = await this.readState();
    if (!state) throw new NotFoundError("machine", this.machineName, { driver: "qemu" });
    return state;
  }

  private async kvmUsable(): Promise<boolean> {
    return access("/dev/kvm", constants.R_OK | constants.W_OK).then(
      () => true,
      () => false,
    );
  }
  private async kvmHangs(): Promise<boolean> {
    return access(this.kvmHangsFile).then(
      () => true,
      () => false,
    );
  }

  async preCreateCheck(signal?: AbortSignal): Promise<void> {
    await this.checkImage(signal);
  }

  /** Every check of preCreateCheck; returns the image and the accelerator decision. */
  private async checkImage(signal?: AbortSignal): Promise<GuestImage> {
    if (process.getuid?.() !== 0)
      throw new UnavailableError("qemu driver: must run as root (network namespaces, tap devices)", { check: "root" });
    for (const [tool, pkg] of [
      ["qemu-system-x86_64", "qemu-system-x86"],
      ["qemu-img", "qemu-utils"],
      ["ip", "iproute2"],
      ["nsenter", "util-linux"],
    ]) {
      const res = await this.ctx.runner.run("sh", ["-c", `command -v ${tool}`], { signal }).catch(() => undefined);
      if (!res || res.exitCode !== 0) throw new UnavailableError(`qemu driver: ${tool} not found (install ${pkg})`, { check: tool });
    }
    const decision = chooseAccel(this.options.accel, { kvmUsable: await this.kvmUsable(), kvmHangs: false });
    if ("error" in decision) throw new InvalidError(decision.error, { field: "qemu-accel" });
    const image = await locateGuestImage(this.options.image);
    if (this.options.diskMb < image.diskMb) {
      throw new InvalidError(`--qemu-disk-size ${this.options.diskMb} MB is smaller than the guest image (${image.diskMb} MB)`, {
        field: "qemu-disk-size",
      });
    }
    if (this.options.memoryMb < image.manifest.minMemoryMb) {
      throw new InvalidError(
        `--qemu-memory ${this.options.memoryMb} MB is below the guest image's minimum of ${image.manifest.minMemoryMb} MB`,
        { field: "qemu-memory" },
      );
    }
    if (
      (await this.readState()) ||
      (await access(`/run/netns/${qemuNetnsName(this.machineName)}`).then(
        () => true,
        () => false,
      ))
    ) {
      throw new ConflictError(
        `qemu ${this.machineName}: a VM of this name already exists (network namespace ${qemuNetnsName(this.machineName)})`,
        { check: "name" },
      );
    }
    return image;
  }

  async create(signal?: AbortSignal): Promise<void> {
    // Outside the clean-up: a name conflict must not remove the VM that has the name.
    const image = await this.checkImage(signal);
    try {
      await mkdir(this.ctx.storeDir, { recursive: true });
      this.report("keys", "generating the SSH key");
      const { publicKey } = await writeMachineKey(this.ctx.storeDir, this.machineName);
      this.report("disk", `creating a ${this.options.diskMb} MB disk over ${image.disk}`);
      const img = await this.ctx.runner.run(
        "qemu-img",
        ["create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", image.disk, this.file(DISK_FILE), `${this.options.diskMb}M`],
        { signal },
      );
      if (img.exitCode !== 0) throw commandFailed("qemu-img create", img);
      const { cidr, bridge } = this.options;
      const ip = await this.lock(() => allocateIp(this.allocationFile, this.machineName, cidr), signal);
      const state: QemuState = {
        ip,
        prefixLength: cidr.prefixLength,
        gateway: cidr.address,
        bridge,
        mac: macAddress(this.machineName),
        user: this.options.sshUser,
        cpus: this.options.cpus,
        memoryMb: this.options.memoryMb,
        kernel: image.kernel,
        initrd: image.initrd,
        accel: "tcg",
      };
      await this.writeState(state);
      await writeFile(this.file("seed.pub"), publicKey + "\n");
      this.report("network", `namespace ${qemuNetnsName(this.machineName)}, tap on ${bridge}, ${ip}/${cidr.prefixLength}`);
      await this.boot(state, signal);
    } catch (e) {
      this.report("cleanup", `create failed (${(e as Error)?.message ?? String(e)}); removing what was made`);
      await this.remove().catch(() => undefined);
      throw e;
    }
  }

  /** Plumbs the network and boots, with the KVM watchdog; returns once sshd answers. */
  private async boot(state: QemuState, signal?: AbortSignal): Promise<void> {
    const decision = chooseAccel(this.options.accel, { kvmUsable: await this.kvmUsable(), kvmHangs: await this.kvmHangs() });
    if ("error" in decision) throw new InvalidError(decision.error, { field: "qemu-accel" });
    await plumbQemuNetwork(this.ctx.runner, this.machineName, state.bridge, this.options.cidr, (fn) => this.lock(fn, signal), signal);
    this.report("boot", `booting with ${decision.reason}`);
    // With auto, a qemu that refuses to start under KVM (e.g. "failed to set MSR" on a nested
    // host) falls back like a guest that hangs.
    let refused: string | undefined;
    try {
      await this.launch(state, decision.accel, signal);
    } catch (e) {
      if (!(decision.accel === "kvm" && decision.fallback)) throw e;
      refused = (e as Error).message;
    }
    if (decision.accel === "kvm" && decision.fallback) {
      const booted = refused === undefined && (await this.waitForConsole(SEED_MARKER, KVM_WATCHDOG_MS, signal));
      if (!booted) {
        await this.killQemu(signal);
        await ensurePrivateDir(this.lockDir);
        const why = refused ?? `A KVM guest did not reach userland within ${formatDuration(KVM_WATCHDOG_MS)} (nested KVM on this host?)`;
        await writeFile(this.kvmHangsFile, `${why} (${new Date().toISOString()}); remove this file to try KVM again.\n`);
        this.report(
          "boot",
          `${refused ? `qemu did not start under KVM (${refused})` : `the guest did not boot under KVM within ${formatDuration(KVM_WATCHDOG_MS)} (nested KVM on this host?)`}; falling back to TCG, and later VMs here start with TCG (remove ${this.kvmHangsFile} to retry KVM)`,
        );
        await this.launch(state, "tcg", signal);
      }
    }
    this.report("ssh", `waiting for sshd on ${hostPort(state.ip, 22)}`);
    await this.waitForSsh(state, signal);
    this.report("ready", `sshd answers on ${hostPort(state.ip, 22)} (${(await this.readState())?.accel ?? "?"})`);
  }

  private async launch(state: QemuState, accel: QemuAccel, signal?: AbortSignal): Promise<void> {
    await mkdir("/run/flotilla-qemu", { recursive: true, mode: 0o700 });
    await rm(this.qmpSocket, { force: true });
    await rm(this.file(PID_FILE), { force: true });
    await writeFile(this.file(CONSOLE_LOG), "");
    const publicKey = (await readFile(this.file("seed.pub"), "utf8")).trim();
    const args = qemuArgs({
      machine: this.machineName,
      accel,
      cpus: state.cpus,
      memoryMb: state.memoryMb,
      disk: this.file(DISK_FILE),
      kernel: state.kernel,
      initrd: state.initrd,
      cmdline: kernelCommandLine({
        hostname: this.machineName,
        ip: state.ip,
        prefixLength: state.prefixLength,
        gateway: state.gateway,
        user: state.user,
        publicKey,
      }),
      tap: QEMU_TAP,
      mac: state.mac,
      qmpSocket: this.qmpSocket,
      pidFile: this.file(PID_FILE),
      consoleLog: this.file(CONSOLE_LOG),
    });
    const res = await this.ctx.runner.run(
      "nsenter",
      [`--net=/run/netns/${qemuNetnsName(this.machineName)}`, "qemu-system-x86_64", ...args],
      { signal, timeoutMs: 60_000 },
    );
    if (res.exitCode !== 0) throw commandFailed(`qemu-system-x86_64 (${accel})`, res);
    await this.writeState({ ...state, accel });
  }

  /** Whether `marker` shows on the serial console within `timeoutMs` (false also when qemu exits). */
  private async waitForConsole(marker: string, timeoutMs: number, signal?: AbortSignal): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if ((await readFile(this.file(CONSOLE_LOG), "utf8").catch(() => "")).includes(marker)) return true;
      if ((await this.qemuPid()) === undefined) return false;
      await sleep(250, signal);
    }
    return false;
  }

  private async consoleTail(): Promise<string> {
    return consoleTail(await readFile(this.file(CONSOLE_LOG), "utf8").catch(() => ""));
  }

  private async waitForSsh(state: QemuState, signal?: AbortSignal): Promise<void> {
    const deadline = Date.now() + this.timing.ipTimeoutMs;
    for (;;) {
      if ((await this.qemuPid()) === undefined) {
        throw new UnavailableError(`qemu ${this.machineName}: the VM stopped while booting (console: ${await this.consoleTail()})`, {
          step: "boot",
        });
      }
      if ((await probeTcp(state.ip, 22, 1000, signal)).ok) return;
      if (Date.now() > deadline) {
        throw new UnavailableError(
          `qemu ${this.machineName}: sshd on ${hostPort(state.ip, 22)} did not answer within ${formatDuration(this.timing.ipTimeoutMs)} (console: ${await this.consoleTail()})`,
          { step: "boot", reason: "timeout" },
        );
      }
      await sleep(500, signal);
    }
  }

  /** qemu's pid when it is running this machine's disk; undefined otherwise (a reused pid is not ours). */
  private async qemuPid(): Promise<number | undefined> {
    const pid = Number((await readFile(this.file(PID_FILE), "utf8").catch(() => "")).trim());
    if (!Number.isInteger(pid) || pid <= 0) return undefined;
    const cmdline = await readFile(`/proc/${pid}/cmdline`, "utf8").catch(() => "");
    return cmdline.includes(this.file(DISK_FILE)) ? pid : undefined;
  }

  private async killQemu(signal?: AbortSignal): Promise<void> {
    const pid = await this.qemuPid();
    if (pid === undefined) return;
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // gone already
    }
    await pollUntil(async () => ((await this.qemuPid()) === undefined ? true : undefined), {
      intervalMs: 100,
      timeoutMs: 10_000,
      signal,
      what: `qemu ${this.machineName}: waiting for qemu (pid ${pid}) to exit after SIGKILL`,
    });
    await rm(this.file(PID_FILE), { force: true });
    await rm(this.qmpSocket, { force: true });
  }

  async start(signal?: AbortSignal): Promise<void> {
    const state = await this.requireState();
    const now = await this.getState();
    if (now === MachineState.Paused) {
      this.report("start", "resuming the VM");
      await qmpCommand(this.qmpSocket, "cont");
      return;
    }
    if (now === MachineState.Running || now === MachineState.Starting) return this.waitForSsh(state, signal);
    if (now === MachineState.Stopping) throw new ConflictError(`qemu ${this.machineName}: is stopping; start it once it has stopped`);
    await this.boot(state, signal);
  }

  /** ACPI power button (the guest halts cleanly); after the stop timeout, the VM is killed. */
  async stop(signal?: AbortSignal): Promise<void> {
    await this.requireState();
    if ((await this.qemuPid()) === undefined) return;
    this.report("stop", "pressing the ACPI power button");
    await qmpCommand(this.qmpSocket, "system_powerdown").catch(() => undefined);
    const timeoutMs = this.timing.stopTimeoutMs;
    const deadline = Date.now() + timeoutMs;
    while ((await this.qemuPid()) !== undefined && Date.now() < deadline) await sleep(250, signal);
    if ((await this.qemuPid()) !== undefined) {
      this.report("stop", `the guest did not power off within ${formatDuration(timeoutMs)}; killing the VM`);
      await this.killQemu(signal);
    }
    await rm(this.qmpSocket, { force: true });
  }

  async restart(signal?: AbortSignal): Promise<void> {
    await this.stop(signal);
    await this.start(signal);
  }

  async kill(signal?: AbortSignal): Promise<void> {
    await this.requireState();
    await this.killQemu(signal);
  }

  /** Kills the VM, deletes its namespace, uplink, address and files; the bridge goes with the last machine. */
  async remove(signal?: AbortSignal): Promise<void> {
    await this.killQemu(signal);
    await unplumbQemuNetwork(this.ctx.runner, this.machineName);
    await this.lock(async () => {
      await releaseIp(this.allocationFile, this.machineName);
      await removeBridgeIfUnused(this.ctx.runner, this.options.bridge);
    }, signal);
    await rm(this.qmpSocket, { force: true });
    await rm(this.ctx.storeDir, { recursive: true, force: true });
  }

  async getState(): Promise<MachineState> {
    if (!(await this.readState())) return MachineState.NotFound;
    if ((await this.qemuPid()) === undefined) return MachineState.Stopped;
    try {
      const status = (await qmpCommand(this.qmpSocket, "query-status", undefined, 3000)) as { status?: string };
      if (status.status === "running") return MachineState.Running;
      if (status.status === "paused" || status.status === "suspended") return MachineState.Paused;
      if (status.status === "shutdown") return MachineState.Stopping;
      if (status.status === "prelaunch" || status.status === "inmigrate") return MachineState.Starting;
      return MachineState.Error;
    } catch {
      return MachineState.Unreachable;
    }
  }

  async getIP(): Promise<string> {
    return (await this.requireState()).ip;
  }

  async getSSH(): Promise<SshEndpoint> {
    const state = await this.requireState();
    return withPinnedHostKey(this.ctx, { host: state.ip, port: 22, user: state.user, keyPath: this.file(KEY_FILE) });
  }

  /** The accelerator the VM last booted with (for the benchmark and the machine's details). */
  async accel(): Promise<QemuAccel | undefined> {
    return (await this.readState())?.accel;
  }
}

export const qemuDriver: DriverFactory<QemuOptions> = {
  name: "qemu",
  description:
    "A virtual machine on this host with qemu (KVM, or TCG software emulation), booted from the Flotilla guest image (needs root)",
  options: qemuOptionSpecs,
  parseOptions: parseQemuOptions,
  bind: (ctx, options) => new QemuDriver(ctx, options),
};
