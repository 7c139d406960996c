// The virtualbox driver: a VM booted from the Flotilla guest image (its VMDK), driven through VBoxManage. The create flow and
// its ordering rules live in virtualbox-create.ts; this file holds the options, the checks and
// the lifecycle of an existing VM.
import { existsSync } from "node:fs";
import { stat } from "node:fs/promises";
import { join } from "node:path";
import { InvalidError, NotSupportedError, UnavailableError } from "@flotilla/core";
import { VmDriver } from "./base.driver";
import { commandFailed, type CommandResult } from "./command-runner";
import { MachineState, type DriverContext, type DriverFactory, type SshEndpoint } from "./driver";
import { checkGuestFits } from "./guest-disk";
import { GUEST_SSH_USER, PINNED_HOST_KEY, withPinnedHostKey } from "./machine-files";
import { OptionReader, type OptionSpec, type RawOptions } from "./options";
import { checkHostOnlyCidr, createVirtualBoxVM, VBOX, type VBoxCreateHost, type VBoxShare } from "./virtualbox-create";
import { findNatForward, parseGuestProperty, parseMachineReadable, parseVBoxVersion, vboxState } from "./virtualbox-output";
import { VBOX_NIC_TYPES, VBOX_PROMISC_MODES, type VBoxNicType, type VBoxPromiscMode, type VirtualBoxOptions } from "./virtualbox-options";

export { dhcpPlan, VBOX_CREATE_LOCK } from "./virtualbox-create";
export { VBOX_NIC_TYPES, VBOX_PROMISC_MODES, type VBoxNicType, type VBoxPromiscMode, type VirtualBoxOptions } from "./virtualbox-options";

const MIN_MAJOR = 5;
const IP_PROPERTY = "/VirtualBox/GuestInfo/Net/1/V4/IP";
const DISK_FILE = "disk.vdi";

export const virtualboxOptionSpecs: readonly OptionSpec[] = [
  { name: "virtualbox-cpu-count", type: "int", default: 1, min: 1, max: 64, help: "Number of virtual CPUs" },
  { name: "virtualbox-memory", type: "int", unit: "MB", default: 1024, min: 128, help: "Memory of the VM in MB" },
  {
    name: "virtualbox-disk-size",
    type: "int",
    unit: "MB",
    default: 20000,
    min: 1024,
    help: "Size of the VM's disk in MB (at least the guest image's)",
  },
  {
    name: "virtualbox-boot2docker-url",
    type: "string",
    help: "Flotilla guest image (scripts/build-guest-image.sh): its directory or its disk.vmdk, a local path or a URL already placed in the image cache under its file name. Default: /var/cache/flotilla/guest-<version>. Nothing is downloaded.",
  },
  { name: "virtualbox-hostonly-cidr", type: "cidr", default: "192.168.99.1/24", help: "Host address and network of the host-only adapter" },
  {
    name: "virtualbox-hostonly-nictype",
    type: "enum",
    default: "virtio",
    choices: VBOX_NIC_TYPES,
    help: "NIC type of the host-only adapter",
  },
  {
    name: "virtualbox-hostonly-nicpromisc",
    type: "enum",
    default: "deny",
    choices: VBOX_PROMISC_MODES,
    help: "Promiscuous mode of the host-only adapter",
  },
  { name: "virtualbox-nat-nictype", type: "enum", default: "virtio", choices: VBOX_NIC_TYPES, help: "NIC type of the NAT adapter" },
  {
    name: "virtualbox-share-folder",
    type: "string",
    help: "Host folder shared into the VM as HOSTDIR:NAME. Default: the users directory (/Users, C:\\Users, /home) as hosthome",
  },
  { name: "virtualbox-no-share", type: "bool", default: false, help: "Share no host folder with the VM" },
];

export function parseVirtualBoxOptions(raw: RawOptions): VirtualBoxOptions {
  const r = new OptionReader("virtualbox", virtualboxOptionSpecs, raw);
  const options: VirtualBoxOptions = {
    cpuCount: r.int("virtualbox-cpu-count"),
    memoryMB: r.int("virtualbox-memory"),
    diskSizeMB: r.int("virtualbox-disk-size"),
    imageUrl: r.path("virtualbox-boot2docker-url"),
    hostonlyCidr: r.cidr("virtualbox-hostonly-cidr"),
    hostonlyNicType: r.choice<VBoxNicType>("virtualbox-hostonly-nictype"),
    hostonlyNicPromisc: r.choice<VBoxPromiscMode>("virtualbox-hostonly-nicpromisc"),
    natNicType: r.choice<VBoxNicType>("virtualbox-nat-nictype"),
    shareFolder: r.string("virtualbox-share-folder"),
    noShare: r.bool("virtualbox-no-share"),
  };
  r.done();
  if (options.shareFolder !== undefined) parseShare(options.shareFolder);
  return options;
}

function parseShare(text: string): VBoxShare {
  // Split at the last ":" so Windows drive letters ("C:\Users:hosthome") stay in the path.
  const i = text.lastIndexOf(":");
  const hostDir = i > 0 ? text.slice(0, i) : "";
  const name = i > 0 ? text.slice(i + 1) : "";
  if (!hostDir || !/^[A-Za-z0-9_.-]+$/.test(name)) {
    throw new InvalidError(
      `--virtualbox-share-folder must be HOSTDIR:NAME (NAME of letters, digits, "_", "-", "."), got ${JSON.stringify(text)}`,
      {
        field: "virtualbox-share-folder",
      },
    );
  }
  return { hostDir, name };
}

function defaultShare(): VBoxShare | undefined {
  const hostDir = process.platform === "darwin" ? "/Users" : process.platform === "win32" ? "C:\\Users" : "/home";
  return existsSync(hostDir) ? { hostDir, name: "hosthome" } : undefined;
}

export class VirtualBoxDriver extends VmDriver<VirtualBoxOptions> {
  protected readonly ipSource = ` (${IP_PROPERTY})`;
  protected readonly ipHint = "the image needs VirtualBox guest additions and a DHCP lease on the host-only adapter";
  protected readonly stopHint = "use kill to power it off";
  protected readonly diskFormat = "vmdk";

  constructor(ctx: DriverContext, options: VirtualBoxOptions) {
    super("virtualbox", ctx, options);
  }

  private get name(): string {
    return this.machineName;
  }
  private get diskPath(): string {
    return join(this.ctx.storeDir, DISK_FILE);
  }
  protected get ownFiles(): string[] {
    return [this.seedPath, this.keyPath, `${this.keyPath}.pub`, this.diskPath, join(this.ctx.storeDir, PINNED_HOST_KEY)];
  }

  /** Runs VBoxManage; a non-zero exit throws an error naming the subcommand unless `allowFail`. */
  private async vbox(
    args: string[],
    signal: AbortSignal | undefined,
    extra: { input?: Buffer; allowFail?: boolean } = {},
  ): Promise<CommandResult> {
    const result = await this.ctx.runner.run(VBOX, args, { signal, input: extra.input, timeoutMs: this.timing.commandTimeoutMs });
    if (result.exitCode !== 0 && !extra.allowFail) throw commandFailed(`${VBOX} ${args[0]}`, result);
    return result;
  }

  private share(): VBoxShare | undefined {
    if (this.options.noShare) return undefined;
    return this.options.shareFolder !== undefined ? parseShare(this.options.shareFolder) : defaultShare();
  }

  /** The driver as the create flow (virtualbox-create.ts) sees it. */
  private get createHost(): VBoxCreateHost {
    return {
      machineName: this.name,
      ctx: this.ctx,
      options: this.options,
      keyPath: this.keyPath,
      seedPath: this.seedPath,
      diskPath: this.diskPath,
      report: this.report,
      reportCleanup: (cause) => this.reportCleanup(cause),
      vbox: (args, signal, extra) => this.vbox(args, signal, extra),
      share: () => this.share(),
      findImage: () => this.findImage(),
      waitForIP: (signal) => this.waitForIP(signal),
    };
  }

  async preCreateCheck(signal?: AbortSignal): Promise<void> {
    const version = await this.needTool(
      () => this.vbox(["--version"], signal),
      `virtualbox: ${VBOX} not found on PATH: install VirtualBox ${MIN_MAJOR} or later`,
      "vboxmanage",
    );
    const v = parseVBoxVersion(version.stdout);
    if (!v)
      throw new UnavailableError(`virtualbox: cannot read the VirtualBox version from ${JSON.stringify(version.stdout.trim())}`, {
        check: "version",
      });
    if (v.major < MIN_MAJOR) {
      throw new NotSupportedError(`virtualbox: VirtualBox ${v.text} is too old; Flotilla needs ${MIN_MAJOR}.0 or later`, {
        check: "version",
      });
    }

    checkGuestFits(this.driverName, await this.findImage(), this.options.diskSizeMB, this.options.memoryMB);
    const share = this.share();
    if (share && this.options.shareFolder !== undefined) {
      const st = await stat(share.hostDir).catch(() => undefined);
      if (!st?.isDirectory())
        throw new InvalidError(`--virtualbox-share-folder ${share.hostDir}: no such directory`, { field: "virtualbox-share-folder" });
    }

    await this.refuseExistingName(signal);
    await checkHostOnlyCidr(this.createHost, signal);
  }

  async create(signal?: AbortSignal): Promise<void> {
    await createVirtualBoxVM(this.createHost, signal);
  }

  protected async guestIP(signal?: AbortSignal): Promise<string | undefined> {
    const res = await this.vbox(["guestproperty", "get", this.name, IP_PROPERTY], signal);
    return parseGuestProperty(res.stdout);
  }

  private async info(signal?: AbortSignal): Promise<Map<string, string> | undefined> {
    const res = await this.vbox(["showvminfo", this.name, "--machinereadable"], signal, { allowFail: true });
    if (res.exitCode === 0) return parseMachineReadable(res.stdout);
    if (/Could not find a registered machine|VBOX_E_OBJECT_NOT_FOUND/.test(res.stderr)) return undefined;
    throw commandFailed(`${VBOX} showvminfo`, res);
  }

  async getState(signal?: AbortSignal): Promise<MachineState> {
    const info = await this.info(signal);
    return info ? vboxState(info.get("VMState")) : MachineState.NotFound;
  }

  protected async resume(signal?: AbortSignal): Promise<void> {
    await this.vbox(["controlvm", this.name, "resume"], signal);
  }
  protected async boot(signal?: AbortSignal): Promise<void> {
    await this.vbox(["startvm", this.name, "--type", "headless"], signal);
  }
  protected async shutDown(state: MachineState, signal?: AbortSignal): Promise<void> {
    if (state === MachineState.Paused) await this.resume(signal);
    this.report("stop", "sending ACPI power button");
    await this.vbox(["controlvm", this.name, "acpipowerbutton"], signal);
  }

  async restart(signal?: AbortSignal): Promise<void> {
    if ((await this.getState(signal)) === MachineState.Running) await this.stop(signal);
    await this.start(signal);
  }

  async kill(signal?: AbortSignal): Promise<void> {
    const state = await this.existingState(signal);
    if (isPoweredOn(state)) {
      this.report("kill", "powering off");
      await this.vbox(["controlvm", this.name, "poweroff"], signal);
    }
  }

  protected async removeVM(state: MachineState, signal?: AbortSignal): Promise<void> {
    if (isPoweredOn(state)) {
      this.report("remove", "powering off");
      await this.vbox(["controlvm", this.name, "poweroff"], signal);
      // The VM's session lingers a moment after poweroff; unregistervm fails while it does.
      await this.waitForState(
        MachineState.Stopped,
        this.timing.stopTimeoutMs,
        signal,
        `virtualbox ${this.name}: waiting for power-off`,
        "retry remove",
      );
    }
    this.report("remove", "unregistering VM and deleting its disks");
    await this.vbox(["unregistervm", this.name, "--delete"], signal);
  }

  async getSSH(signal?: AbortSignal): Promise<SshEndpoint> {
    const info = await this.info(signal);
    if (!info) throw this.notFound();
    const fwd = findNatForward(info, "ssh");
    if (!fwd) throw new UnavailableError(`virtualbox ${this.name}: no "ssh" NAT port forward on nic1`);
    return withPinnedHostKey(this.ctx, {
      host: fwd.hostIp || "127.0.0.1",
      port: fwd.hostPort,
      user: GUEST_SSH_USER,
      keyPath: this.keyPath,
    });
  }
}

function isPoweredOn(state: MachineState): boolean {
  return (
    state === MachineState.Running || state === MachineState.Paused || state === MachineState.Starting || state === MachineState.Stopping
  );
}

export const virtualboxDriver: DriverFactory<VirtualBoxOptions> = {
  name: "virtualbox",
  description: "VirtualBox VM on this host (VBoxManage), booted from the Flotilla guest image (VMDK)",
  options: virtualboxOptionSpecs,
  parseOptions: parseVirtualBoxOptions,
  bind: (ctx, options) => new VirtualBoxDriver(ctx, options),
};
