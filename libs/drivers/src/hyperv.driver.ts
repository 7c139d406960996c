// The hyperv driver: a VM booted from the Flotilla guest image (its VHDX), driven through the
// Hyper-V PowerShell module.
// Every step is one `powershell.exe -NoProfile -NonInteractive <command>`; values are passed as
// single-quoted PowerShell literals (see psQuote), so names and paths are never interpreted.
//
// create: key → seed ISO → copy the image's disk.vhdx into the store → resize → New-VM (generation
//   1: the image boots by BIOS) → memory, CPUs, seed in the DVD drive, disk → Start-VM → wait for
//   the first adapter's IP
import { copyFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { InvalidError, UnavailableError } from "@flotilla/core";
import { VmDriver } from "./base.driver";
import { commandFailed, type CommandResult } from "./command-runner";
import { MachineState, type DriverContext, type DriverFactory, type SshEndpoint } from "./driver";
import { checkGuestFits } from "./guest-disk";
import { GUEST_SSH_USER, PINNED_HOST_KEY, removeFiles, withPinnedHostKey, writeMachineKey } from "./machine-files";
import { OptionReader, type OptionSpec, type RawOptions } from "./options";
import { seedIso } from "./seed-iso";

export interface HyperVOptions {
  /** Switch name; undefined: the first external switch. */
  virtualSwitch?: string;
  memoryMB: number;
  cpuCount: number;
  diskSizeMB: number;
  /** The Flotilla guest image (directory or disk.vhdx), a local path or cached URL; undefined: the cached image of this version. */
  imageUrl?: string;
}

const POWERSHELL = "powershell.exe";
const DISK_VHDX = "disk.vhdx";
/** SID of the built-in "Hyper-V Administrators" group, whose members may manage VMs without being admins. */
const HYPERV_ADMINS_SID = "S-1-5-32-578";

export const hypervOptionSpecs: readonly OptionSpec[] = [
  {
    name: "hyperv-virtual-switch",
    type: "string",
    help: "Virtual switch for the VM's network adapter. Default: the first external switch",
  },
  { name: "hyperv-memory", type: "int", unit: "MB", default: 1024, min: 128, help: "Memory of the VM in MB (a multiple of 2)" },
  { name: "hyperv-cpu-count", type: "int", default: 1, min: 1, max: 64, help: "Number of virtual CPUs" },
  {
    name: "hyperv-disk-size",
    type: "int",
    unit: "MB",
    default: 20000,
    min: 1024,
    help: "Size of the VM's disk in MB (at least the guest image's)",
  },
  {
    name: "hyperv-boot2docker-url",
    type: "string",
    help: "Flotilla guest image (scripts/build-guest-image.sh): its directory or its disk.vhdx, a local path or a URL already placed in the image cache under its file name. Default: /var/cache/flotilla/guest-<version>. Nothing is downloaded.",
  },
];

export function parseHyperVOptions(raw: RawOptions): HyperVOptions {
  const r = new OptionReader("hyperv", hypervOptionSpecs, raw);
  const options: HyperVOptions = {
    virtualSwitch: r.string("hyperv-virtual-switch"),
    memoryMB: r.int("hyperv-memory"),
    cpuCount: r.int("hyperv-cpu-count"),
    diskSizeMB: r.int("hyperv-disk-size"),
    imageUrl: r.path("hyperv-boot2docker-url"),
  };
  r.done();
  if (options.memoryMB % 2 !== 0) {
    throw new InvalidError(`--hyperv-memory must be a multiple of 2 MB (Hyper-V's rule), got ${options.memoryMB}`, {
      field: "hyperv-memory",
    });
  }
  return options;
}

/**
 * A PowerShell single-quoted literal: nothing inside is expanded. PowerShell also treats the
 * typographic quotes ‘ ’ ‚ ‛ as single quotes, so those are doubled too.
 */
export function psQuote(value: string): string {
  return `'${value.replace(/['\u2018\u2019\u201a\u201b]/g, (q) => q + q)}'`;
}

/** Hyper-V's VM states (Get-VM .State) → ours. */
export function hypervState(state: string): MachineState {
  switch (state.trim()) {
    case "Running":
      return MachineState.Running;
    case "Off":
      return MachineState.Stopped;
    case "Starting":
    case "Resuming":
    case "Reset":
      return MachineState.Starting;
    case "Stopping":
    case "Saving":
    case "Pausing":
      return MachineState.Stopping;
    case "Paused":
      return MachineState.Paused;
    case "Saved":
      return MachineState.Saved;
    default:
      // The *Critical states (storage lost), Other, or something unknown.
      return MachineState.Error;
  }
}

const IS_ADMIN =
  "@([Security.Principal.WindowsPrincipal][Security.Principal.WindowsIdentity]::GetCurrent()).IsInRole([Security.Principal.WindowsBuiltInRole] 'Administrator')";
const IS_HYPERV_ADMIN = `@([Security.Principal.WindowsPrincipal][Security.Principal.WindowsIdentity]::GetCurrent()).IsInRole([Security.Principal.SecurityIdentifier]::new('${HYPERV_ADMINS_SID}'))`;
const HAS_MODULE = "@(Get-Module -ListAvailable hyper-v).Name | Get-Unique";
const LIST_SWITCHES = "Hyper-V\\Get-VMSwitch | ForEach-Object { $_.Name + [char]9 + $_.SwitchType }";

export class HyperVDriver extends VmDriver<HyperVOptions> {
  protected readonly ipSource = "";
  protected readonly ipHint = "the image needs Hyper-V integration services (KVP) and an address on the switch's network";
  protected readonly stopHint = "use kill to turn it off";
  protected readonly diskFormat = "vhdx";

  constructor(ctx: DriverContext, options: HyperVOptions) {
    super("hyperv", ctx, options);
  }

  private get q(): string {
    return psQuote(this.machineName);
  }
  private get diskPath(): string {
    return join(this.ctx.storeDir, DISK_VHDX);
  }
  /** New-VM -Path puts the VM's configuration in a folder named after the VM. */
  private get vmDir(): string {
    return join(this.ctx.storeDir, this.machineName);
  }
  /** Remove-VM leaves disks and the configuration folder behind: these go by hand. */
  protected get ownFiles(): string[] {
    return [this.keyPath, `${this.keyPath}.pub`, this.seedPath, this.diskPath, this.vmDir, join(this.ctx.storeDir, PINNED_HOST_KEY)];
  }

  /** Runs one PowerShell command; a non-zero exit throws an error naming the cmdlet unless `allowFail`. */
  private async ps(command: string, signal: AbortSignal | undefined, allowFail = false): Promise<CommandResult> {
    const result = await this.ctx.runner.run(POWERSHELL, ["-NoProfile", "-NonInteractive", command], {
      signal,
      timeoutMs: this.timing.commandTimeoutMs,
    });
    if (result.exitCode !== 0 && !allowFail) throw commandFailed(`${POWERSHELL} ${stepName(command)}`, result);
    return result;
  }

  async preCreateCheck(signal?: AbortSignal): Promise<void> {
    const mod = await this.needTool(
      () => this.ps(HAS_MODULE, signal),
      `hyperv: ${POWERSHELL} not found on PATH: the hyperv driver runs on Windows with Hyper-V`,
      "powershell",
    );
    if (!/^Hyper-V$/im.test(mod.stdout)) {
      throw new UnavailableError(
        "hyperv: the Hyper-V PowerShell module is not installed: enable Hyper-V (with its management tools) in Windows features",
        {
          check: "module",
        },
      );
    }

    const admin = await this.ps(IS_ADMIN, signal);
    if (!isTrue(admin.stdout)) {
      const member = await this.ps(IS_HYPERV_ADMIN, signal);
      if (!isTrue(member.stdout)) {
        throw new UnavailableError(
          'hyperv: managing Hyper-V needs administrator rights: run as Administrator or join the "Hyper-V Administrators" group',
          { check: "admin" },
        );
      }
    }

    await this.resolveSwitch(signal);
    checkGuestFits(this.driverName, await this.findImage(), this.options.diskSizeMB, this.options.memoryMB);
    await this.refuseExistingName(signal);
  }

  /** The switch named by the option, or the first external one. */
  private async resolveSwitch(signal?: AbortSignal): Promise<string> {
    const out = (await this.ps(LIST_SWITCHES, signal)).stdout;
    const switches = out
      .split(/\r?\n/)
      .filter((l) => l.trim())
      .map((l) => {
        const [name, type = ""] = l.split("\t");
        return { name: name.trim(), type: type.trim() };
      });
    const have = switches.length > 0 ? switches.map((s) => `${s.name} (${s.type})`).join(", ") : "none";
    const wanted = this.options.virtualSwitch;
    if (wanted !== undefined) {
      const found = switches.find((s) => s.name === wanted);
      if (!found) {
        throw new InvalidError(`--hyperv-virtual-switch ${JSON.stringify(wanted)}: no such virtual switch (have: ${have})`, {
          field: "hyperv-virtual-switch",
        });
      }
      return found.name;
    }
    const external = switches.find((s) => s.type === "External");
    if (!external) {
      throw new UnavailableError(
        `hyperv: no external virtual switch: create one in Hyper-V Manager or name a switch with --hyperv-virtual-switch (have: ${have})`,
        { check: "switch" },
      );
    }
    return external.name;
  }

  async create(signal?: AbortSignal): Promise<void> {
    const name = this.q;
    const o = this.options;
    const made = { vm: false, started: false };
    try {
      const switchName = await this.resolveSwitch(signal);
      this.report("key", "generating SSH key");
      const { publicKey } = await writeMachineKey(this.ctx.storeDir, this.machineName);
      const image = await this.findImage();
      this.report("seed", "writing the seed disk (hostname, SSH user and key)");
      await writeFile(this.seedPath, seedIso({ hostname: this.machineName, user: GUEST_SSH_USER, publicKey }));

      // The machine's disk is its own copy of the image's dynamic VHDX; the guest grows its root
      // file system to the resized disk on first boot.
      this.report("disk", `copying ${image.disk} into a ${o.diskSizeMB} MB disk`);
      await copyFile(image.disk, this.diskPath);
      await this.ps(`Hyper-V\\Resize-VHD -Path ${psQuote(this.diskPath)} -SizeBytes ${o.diskSizeMB}MB`, signal);

      this.report("vm", "creating VM");
      await this.ps(
        `Hyper-V\\New-VM -Name ${name} -Generation 1 -Path ${psQuote(this.ctx.storeDir)} -SwitchName ${psQuote(switchName)} -MemoryStartupBytes ${o.memoryMB}MB`,
        signal,
      );
      made.vm = true;
      // Dynamic memory lets Hyper-V shrink the guest under the containers' feet; the scheduler
      // counts on the memory it was told.
      await this.ps(`Hyper-V\\Set-VMMemory -VMName ${name} -DynamicMemoryEnabled $false`, signal);
      await this.ps(`Hyper-V\\Set-VMProcessor -VMName ${name} -Count ${o.cpuCount}`, signal);
      // Generation 1 firmware tries the DVD first; the seed ISO is not bootable, so it boots the disk.
      await this.ps(`Hyper-V\\Set-VMDvdDrive -VMName ${name} -Path ${psQuote(this.seedPath)}`, signal);
      await this.ps(`Hyper-V\\Add-VMHardDiskDrive -VMName ${name} -Path ${psQuote(this.diskPath)}`, signal);

      this.report("start", "starting VM");
      await this.ps(`Hyper-V\\Start-VM -Name ${name}`, signal);
      made.started = true;
      this.report("ip", "waiting for the guest to report its IP");
      const ip = await this.waitForIP(signal);
      this.report("ready", `running at ${ip}`);
    } catch (e) {
      this.reportCleanup(e);
      // Without the caller's signal: it may be why we are here.
      if (made.started) await this.ps(`Hyper-V\\Stop-VM -Name ${name} -TurnOff`, undefined, true).catch(() => undefined);
      if (made.vm) await this.ps(`Hyper-V\\Remove-VM -Name ${name} -Force`, undefined, true).catch(() => undefined);
      await removeFiles(this.ownFiles);
      throw e;
    }
  }

  protected async guestIP(signal?: AbortSignal): Promise<string | undefined> {
    const res = await this.ps(`((Hyper-V\\Get-VM -Name ${this.q}).networkadapters[0]).ipaddresses[0]`, signal);
    const ip = res.stdout.trim();
    return ip ? ip : undefined;
  }

  async getState(signal?: AbortSignal): Promise<MachineState> {
    const res = await this.ps(`(Hyper-V\\Get-VM -Name ${this.q}).state`, signal, true);
    if (res.exitCode === 0) return hypervState(res.stdout);
    if (/unable to find a virtual machine/i.test(res.stderr)) return MachineState.NotFound;
    throw commandFailed(`${POWERSHELL} Get-VM`, res);
  }

  protected async resume(signal?: AbortSignal): Promise<void> {
    await this.ps(`Hyper-V\\Resume-VM -Name ${this.q}`, signal);
  }
  protected async boot(signal?: AbortSignal): Promise<void> {
    await this.ps(`Hyper-V\\Start-VM -Name ${this.q}`, signal);
  }
  protected async shutDown(_state: MachineState, signal?: AbortSignal): Promise<void> {
    this.report("stop", "shutting the guest down");
    // Stop-VM asks the guest's shutdown integration service and returns when it is off, or fails.
    await this.ps(`Hyper-V\\Stop-VM -Name ${this.q}`, signal);
  }

  /** Restart-VM when running (one reboot, not a stop and a start); otherwise a start. */
  async restart(signal?: AbortSignal): Promise<void> {
    const state = await this.getState(signal);
    if (state === MachineState.Running) {
      this.report("restart", "restarting VM");
      await this.ps(`Hyper-V\\Restart-VM -Name ${this.q} -Force`, signal);
      await this.waitForIP(signal);
      return;
    }
    await this.start(signal);
  }

  async kill(signal?: AbortSignal): Promise<void> {
    const state = await this.existingState(signal);
    if (state === MachineState.Stopped || state === MachineState.Saved) return;
    this.report("kill", "turning off");
    await this.ps(`Hyper-V\\Stop-VM -Name ${this.q} -TurnOff`, signal);
  }

  protected async removeVM(state: MachineState, signal?: AbortSignal): Promise<void> {
    if (state !== MachineState.Stopped && state !== MachineState.Saved) {
      this.report("remove", "turning off");
      await this.ps(`Hyper-V\\Stop-VM -Name ${this.q} -TurnOff`, signal);
    }
    this.report("remove", "removing VM");
    await this.ps(`Hyper-V\\Remove-VM -Name ${this.q} -Force`, signal);
  }

  async getSSH(signal?: AbortSignal): Promise<SshEndpoint> {
    return withPinnedHostKey(this.ctx, { host: await this.getIP(signal), port: 22, user: GUEST_SSH_USER, keyPath: this.keyPath });
  }
}

function isTrue(out: string): boolean {
  return /^\s*True\s*$/i.test(out);
}

/** "Hyper-V\New-VM -Name ..." → "New-VM"; "(Hyper-V\Get-VM ...).state" → "Get-VM". */
function stepName(command: string): string {
  return /(?:Hyper-V\\)?([A-Z][a-z]+-[A-Za-z]+)/.exec(command)?.[1] ?? command.slice(0, 40);
}

export const hypervDriver: DriverFactory<HyperVOptions> = {
  name: "hyperv",
  description: "Hyper-V VM on this Windows host (PowerShell Hyper-V module), booted from the Flotilla guest image (VHDX)",
  options: hypervOptionSpecs,
  parseOptions: parseHyperVOptions,
  bind: (ctx, options) => new HyperVDriver(ctx, options),
};
