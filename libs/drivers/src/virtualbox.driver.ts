// The virtualbox driver: a boot2docker-style VM driven through VBoxManage.
//
// create, in order (the ordering rules are in the comments below):
//   key → copy image → [host lock: host-only network + DHCP → disk with userdata → createvm →
//   modifyvm (hardware, NAT + SSH forward, host-only NIC) → storage → shares → startvm] → wait for IP
import { existsSync } from "node:fs";
import { stat } from "node:fs/promises";
import { networkInterfaces, tmpdir } from "node:os";
import { join } from "node:path";
import { ConflictError, InvalidError, NotFoundError, NotSupportedError, UnavailableError } from "@flotilla/core";
import { commandFailed, type CommandResult } from "./command-runner";
import {
  engineUrl,
  MachineState,
  timingOf,
  validateMachineName,
  type Driver,
  type DriverContext,
  type DriverFactory,
  type DriverTiming,
  type SshEndpoint,
} from "./driver";
import { withHostLock } from "./lock";
import {
  copyImage,
  defaultCacheDir,
  GUEST_SSH_USER,
  IMAGE_FILE,
  KEY_FILE,
  locateImage,
  removeFiles,
  reporter,
  writeMachineKey,
} from "./machine-files";
import { findFreePort, hostInNetwork, ipv4ToInt, networkAddress, networksOverlap, prefixOfNetmask, type Cidr } from "./net";
import { OptionReader, type OptionSpec, type RawOptions } from "./options";
import { pollUntil } from "./poll";
import { boot2dockerUserdata } from "./userdata";
import {
  findNatForward,
  parseDhcpServers,
  parseGuestProperty,
  parseHostOnlyIfs,
  parseMachineReadable,
  parseVBoxVersion,
  vboxState,
} from "./virtualbox-output";

export const VBOX_NIC_TYPES = ["virtio", "82540EM", "82543GC", "82545EM", "Am79C970A", "Am79C973"] as const;
export type VBoxNicType = (typeof VBOX_NIC_TYPES)[number];
export const VBOX_PROMISC_MODES = ["deny", "allow-vms", "allow-all"] as const;
export type VBoxPromiscMode = (typeof VBOX_PROMISC_MODES)[number];

export interface VirtualBoxOptions {
  cpuCount: number;
  memoryMB: number;
  diskSizeMB: number;
  /** Local path or cached URL of the OS image; undefined: `<cacheDir>/boot2docker.iso`. */
  imageUrl?: string;
  hostonlyCidr: Cidr;
  hostonlyNicType: VBoxNicType;
  hostonlyNicPromisc: VBoxPromiscMode;
  natNicType: VBoxNicType;
  /** "HOSTDIR:NAME"; undefined: the platform's users directory as "hosthome", when it exists. */
  shareFolder?: string;
  noShare: boolean;
}

const VBOX = "VBoxManage";
const MIN_MAJOR = 5;
const SATA = "SATA";
const IP_PROPERTY = "/VirtualBox/GuestInfo/Net/1/V4/IP";
const DISK_FILE = "disk.vmdk";
/** All VirtualBox creates on a host take this lock (file `<lockDir>/virtualbox-create.lock`). */
export const VBOX_CREATE_LOCK = "virtualbox-create";

export const virtualboxOptionSpecs: readonly OptionSpec[] = [
  { name: "virtualbox-cpu-count", type: "int", default: 1, min: 1, max: 64, help: "Number of virtual CPUs" },
  { name: "virtualbox-memory", type: "int", unit: "MB", default: 1024, min: 128, help: "Memory of the VM in MB" },
  { name: "virtualbox-disk-size", type: "int", unit: "MB", default: 20000, min: 1024, help: "Size of the data disk in MB" },
  {
    name: "virtualbox-boot2docker-url",
    type: "string",
    help: "OS image (boot2docker-style ISO): a local path, or a URL already placed in the image cache under its file name. Default: <cache>/boot2docker.iso. Nothing is downloaded.",
  },
  { name: "virtualbox-hostonly-cidr", type: "cidr", default: "192.168.99.1/24", help: "Host address and network of the host-only adapter" },
  { name: "virtualbox-hostonly-nictype", type: "enum", default: "virtio", choices: VBOX_NIC_TYPES, help: "NIC type of the host-only adapter" },
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

function parseShare(text: string): { hostDir: string; name: string } {
  // Split at the last ":" so Windows drive letters ("C:\Users:hosthome") stay in the path.
  const i = text.lastIndexOf(":");
  const hostDir = i > 0 ? text.slice(0, i) : "";
  const name = i > 0 ? text.slice(i + 1) : "";
  if (!hostDir || !/^[A-Za-z0-9_.-]+$/.test(name)) {
    throw new InvalidError(`--virtualbox-share-folder must be HOSTDIR:NAME (NAME of letters, digits, "_", "-", "."), got ${JSON.stringify(text)}`, {
      field: "virtualbox-share-folder",
    });
  }
  return { hostDir, name };
}

function defaultShare(): { hostDir: string; name: string } | undefined {
  const hostDir = process.platform === "darwin" ? "/Users" : process.platform === "win32" ? "C:\\Users" : "/home";
  return existsSync(hostDir) ? { hostDir, name: "hosthome" } : undefined;
}

/** The DHCP server layout for a host-only network: server just after the host, guests in the upper part. */
export function dhcpPlan(c: Cidr): { serverIp: string; lowerIp: string; upperIp: string } {
  const net = ipv4ToInt(c.network)!;
  const host = ipv4ToInt(c.address)! - net;
  const size = ipv4ToInt(c.broadcast)! - net; // offset of the broadcast address
  const server = host === 2 ? 3 : 2;
  // Guests start at .100 in a /24 (docker-machine users know 192.168.99.100), or halfway up a small net.
  let lower = size > 200 ? 100 : Math.max(server + 1, Math.floor(size / 2));
  const upper = size - 1;
  if (host >= lower && host <= upper) lower = host + 1 <= upper ? host + 1 : lower;
  return { serverIp: hostInNetwork(c, server), lowerIp: hostInNetwork(c, lower), upperIp: hostInNetwork(c, upper) };
}

export class VirtualBoxDriver implements Driver {
  readonly driverName = "virtualbox";
  readonly machineName: string;
  private readonly timing: DriverTiming;
  private readonly report: (step: string, message: string) => void;

  constructor(
    private readonly ctx: DriverContext,
    readonly options: VirtualBoxOptions,
  ) {
    validateMachineName(ctx.machineName);
    this.machineName = ctx.machineName;
    this.timing = timingOf(ctx);
    this.report = reporter(ctx, "virtualbox");
  }

  private get name(): string {
    return this.machineName;
  }
  private get keyPath(): string {
    return join(this.ctx.storeDir, KEY_FILE);
  }
  private get diskPath(): string {
    return join(this.ctx.storeDir, DISK_FILE);
  }
  private get isoPath(): string {
    return join(this.ctx.storeDir, IMAGE_FILE);
  }

  /** Runs VBoxManage; a non-zero exit throws an error naming the subcommand unless `allowFail`. */
  private async vbox(args: string[], signal: AbortSignal | undefined, extra: { input?: Buffer; allowFail?: boolean } = {}): Promise<CommandResult> {
    const result = await this.ctx.runner.run(VBOX, args, { signal, input: extra.input, timeoutMs: this.timing.commandTimeoutMs });
    if (result.exitCode !== 0 && !extra.allowFail) throw commandFailed(`${VBOX} ${args[0]}`, result);
    return result;
  }

  private share(): { hostDir: string; name: string } | undefined {
    if (this.options.noShare) return undefined;
    return this.options.shareFolder !== undefined ? parseShare(this.options.shareFolder) : defaultShare();
  }

  async preCreateCheck(signal?: AbortSignal): Promise<void> {
    let version: CommandResult;
    try {
      version = await this.vbox(["--version"], signal);
    } catch (e) {
      if ((e as UnavailableError).details?.reason === "not-found") {
        throw new UnavailableError(`virtualbox: ${VBOX} not found on PATH: install VirtualBox ${MIN_MAJOR} or later`, { check: "vboxmanage" });
      }
      throw e;
    }
    const v = parseVBoxVersion(version.stdout);
    if (!v) throw new UnavailableError(`virtualbox: cannot read the VirtualBox version from ${JSON.stringify(version.stdout.trim())}`, { check: "version" });
    if (v.major < MIN_MAJOR) {
      throw new NotSupportedError(`virtualbox: VirtualBox ${v.text} is too old; Flotilla needs ${MIN_MAJOR}.0 or later`, { check: "version" });
    }

    await locateImage("virtualbox-boot2docker-url", this.options.imageUrl, this.ctx.cacheDir ?? defaultCacheDir());
    const share = this.share();
    if (share && this.options.shareFolder !== undefined) {
      const st = await stat(share.hostDir).catch(() => undefined);
      if (!st?.isDirectory()) throw new InvalidError(`--virtualbox-share-folder ${share.hostDir}: no such directory`, { field: "virtualbox-share-folder" });
    }

    if ((await this.getState(signal)) !== MachineState.NotFound) {
      throw new ConflictError(`virtualbox: a VM named ${this.name} already exists`, { check: "name" });
    }

    const cidr = this.options.hostonlyCidr;
    const ifs = parseHostOnlyIfs((await this.vbox(["list", "hostonlyifs"], signal)).stdout);
    for (const i of ifs) {
      const prefix = prefixOfNetmask(i.netmask);
      if (ipv4ToInt(i.ip) === undefined || prefix === undefined) continue;
      if (i.ip === cidr.address && prefix === cidr.prefixLength) continue; // the one we will reuse
      const other = { network: networkAddress(i.ip, prefix), prefixLength: prefix };
      if (networksOverlap(cidr, other)) {
        throw new InvalidError(
          `--virtualbox-hostonly-cidr ${cidr.text} overlaps host-only interface ${i.name} (${i.ip}/${prefix}); pick another network or reuse ${i.ip}/${prefix}`,
          { field: "virtualbox-hostonly-cidr" },
        );
      }
    }
    for (const [ifname, addrs] of Object.entries(networkInterfaces())) {
      // Host-only adapters appear here too; they were judged above.
      if (/^vboxnet\d+$/.test(ifname)) continue;
      for (const a of addrs ?? []) {
        if (a.family !== "IPv4" || a.internal) continue;
        const prefix = prefixOfNetmask(a.netmask);
        if (prefix === undefined) continue;
        if (networksOverlap(cidr, { network: networkAddress(a.address, prefix), prefixLength: prefix })) {
          throw new InvalidError(
            `--virtualbox-hostonly-cidr ${cidr.text} overlaps host interface ${ifname} (${a.address}/${prefix}); pick another network`,
            { field: "virtualbox-hostonly-cidr" },
          );
        }
      }
    }
  }

  async create(signal?: AbortSignal): Promise<void> {
    const made = { files: [] as string[], disk: false, vm: false, started: false, cleaned: false };
    // VirtualBox corrupts its registry and host-only setup when VMs are created in parallel
    // (docker-machine users hit this with `create` loops), so everything that registers
    // something with VBoxSVC, or unregisters it again, runs under one host-wide lock. Waiting
    // for the guest's IP does not touch the registry and stays outside, so boots overlap.
    const locked = (fn: () => Promise<void>, lockSignal?: AbortSignal) =>
      withHostLock(this.ctx.lockDir ?? join(tmpdir(), "flotilla-locks"), VBOX_CREATE_LOCK, fn, {
        signal: lockSignal,
        purpose: `virtualbox create ${this.name}`,
        onWait: (holder) => this.report("lock", `waiting for another VirtualBox create (${holder})`),
      });
    const cleanup = async (cause: unknown) => {
      if (made.cleaned) return;
      made.cleaned = true;
      await this.cleanupFailedCreate(made, cause);
    };
    try {
      this.report("key", "generating SSH key");
      made.files.push(this.keyPath, `${this.keyPath}.pub`);
      const { publicKey } = await writeMachineKey(this.ctx.storeDir, this.name);

      const image = await locateImage("virtualbox-boot2docker-url", this.options.imageUrl, this.ctx.cacheDir ?? defaultCacheDir());
      this.report("image", `copying ${image}`);
      made.files.push(this.isoPath);
      await copyImage(image, this.ctx.storeDir);
      signal?.throwIfAborted();

      await locked(async () => {
        try {
          await this.createLocked(signal, publicKey, made);
        } catch (e) {
          await cleanup(e); // still holding the lock
          throw e;
        }
      }, signal);

      this.report("ip", "waiting for the guest to report its IP");
      const ip = await this.waitForIP(signal);
      this.report("ready", `running at ${ip}`);
    } catch (e) {
      if (!made.cleaned) {
        // Unregistering is registry work too: take the lock again, without the caller's signal.
        if (made.disk || made.vm) await locked(() => cleanup(e)).catch(() => undefined);
        else await cleanup(e);
      }
      throw e;
    }
  }

  private async createLocked(signal: AbortSignal | undefined, publicKey: string, made: { disk: boolean; vm: boolean; started: boolean }): Promise<void> {
    const name = this.name;
    const o = this.options;

    const hostonly = await this.ensureHostOnlyNetwork(signal);

    // The data disk is born holding the userdata tar, so the guest formats it and installs our
    // key on first boot. convertfromraw reads the tar from stdin and zero-fills up to the size.
    this.report("disk", `creating ${o.diskSizeMB} MB disk`);
    made.disk = true;
    await this.vbox(["convertfromraw", "stdin", this.diskPath, String(o.diskSizeMB * 1024 * 1024), "--format", "VMDK"], signal, {
      input: boot2dockerUserdata(publicKey),
    });

    this.report("vm", "registering VM");
    await this.vbox(["createvm", "--name", name, "--basefolder", this.ctx.storeDir, "--register"], signal);
    made.vm = true;

    // The port is chosen just before it is registered; VirtualBox fails startvm if someone took it.
    const sshPort = await findFreePort();
    await this.vbox(
      [
        "modifyvm", name,
        "--ostype", "Linux26_64",
        "--cpus", String(o.cpuCount),
        "--memory", String(o.memoryMB),
        "--acpi", "on",
        "--ioapic", "on",
        "--rtcuseutc", "on",
        "--pae", "on",
        "--hpet", "on",
        "--boot1", "dvd",
        "--boot2", "disk",
        "--boot3", "none",
        "--boot4", "none",
      ],
      signal,
    );
    await this.vbox(
      [
        "modifyvm", name,
        "--nic1", "nat",
        "--nictype1", o.natNicType,
        "--cableconnected1", "on",
        "--natdnshostresolver1", "on",
        "--natdnsproxy1", "off",
        "--natpf1", `ssh,tcp,127.0.0.1,${sshPort},,22`,
      ],
      signal,
    );
    await this.vbox(
      [
        "modifyvm", name,
        "--nic2", "hostonly",
        "--nictype2", o.hostonlyNicType,
        "--nicpromisc2", o.hostonlyNicPromisc,
        "--hostonlyadapter2", hostonly,
        "--cableconnected2", "on",
      ],
      signal,
    );

    this.report("storage", "attaching image and disk");
    await this.vbox(["storagectl", name, "--name", SATA, "--add", "sata", "--hostiocache", "on"], signal);
    await this.vbox(["storageattach", name, "--storagectl", SATA, "--port", "0", "--device", "0", "--type", "dvddrive", "--medium", this.isoPath], signal);
    await this.vbox(["storageattach", name, "--storagectl", SATA, "--port", "1", "--device", "0", "--type", "hdd", "--medium", this.diskPath], signal);

    const share = this.share();
    if (share) {
      await this.vbox(["sharedfolder", "add", name, "--name", share.name, "--hostpath", share.hostDir, "--automount"], signal);
      await this.vbox(["setextradata", name, `VBoxInternal2/SharedFoldersEnableSymlinksCreate/${share.name}`, "1"], signal);
    }

    this.report("start", "starting VM");
    await this.vbox(["startvm", name, "--type", "headless"], signal);
    made.started = true;
  }

  /** Finds the host-only interface holding the host address of the CIDR, or makes it; then its DHCP server. */
  private async ensureHostOnlyNetwork(signal?: AbortSignal): Promise<string> {
    const c = this.options.hostonlyCidr;
    const ifs = parseHostOnlyIfs((await this.vbox(["list", "hostonlyifs"], signal)).stdout);
    let ifname = ifs.find((i) => i.ip === c.address && i.netmask === c.netmask)?.name;
    if (!ifname) {
      this.report("network", `creating host-only interface for ${c.text}`);
      const created = await this.vbox(["hostonlyif", "create"], signal);
      ifname = /Interface '([^']+)' was successfully created/.exec(created.stdout)?.[1];
      if (!ifname) {
        throw new UnavailableError(`${VBOX} hostonlyif create: cannot find the new interface's name in ${JSON.stringify(created.stdout.trim())}`, {
          step: `${VBOX} hostonlyif`,
        });
      }
      await this.vbox(["hostonlyif", "ipconfig", ifname, "--ip", c.address, "--netmask", c.netmask], signal);
    }

    const plan = dhcpPlan(c);
    const servers = parseDhcpServers((await this.vbox(["list", "dhcpservers"], signal)).stdout);
    const existing = servers.find((s) => s.networkName === `HostInterfaceNetworking-${ifname}`);
    const wanted = ["--ifname", ifname, "--ip", plan.serverIp, "--netmask", c.netmask, "--lowerip", plan.lowerIp, "--upperip", plan.upperIp, "--enable"];
    if (!existing) {
      await this.vbox(["dhcpserver", "add", ...wanted], signal);
    } else if (
      existing.ip !== plan.serverIp ||
      existing.netmask !== c.netmask ||
      existing.lowerIp !== plan.lowerIp ||
      existing.upperIp !== plan.upperIp ||
      !existing.enabled
    ) {
      await this.vbox(["dhcpserver", "modify", ...wanted], signal);
    }
    return ifname;
  }

  /**
   * Undoes a failed create without the caller's signal (it may be the reason we are here).
   * A registered VM takes its disk with it (`unregistervm --delete`); a disk that never got a VM
   * is closed and deleted on its own. The host-only network stays: other machines share it.
   */
  private async cleanupFailedCreate(made: { files: string[]; disk: boolean; vm: boolean; started: boolean }, cause: unknown): Promise<void> {
    this.report("cleanup", `create failed (${(cause as Error)?.message ?? String(cause)}); removing what was made`);
    const quietly = async (args: string[]) => {
      try {
        await this.vbox(args, undefined, { allowFail: true });
      } catch {
        // Best effort: the original error is what the caller needs to see.
      }
    };
    if (made.started) await quietly(["controlvm", this.name, "poweroff"]);
    if (made.vm) await quietly(["unregistervm", this.name, "--delete"]);
    else if (made.disk) await quietly(["closemedium", "disk", this.diskPath, "--delete"]);
    await removeFiles([...made.files, this.diskPath]);
  }

  private async waitForIP(signal?: AbortSignal): Promise<string> {
    return pollUntil(() => this.guestIP(signal), {
      intervalMs: this.timing.pollIntervalMs,
      timeoutMs: this.timing.ipTimeoutMs,
      signal,
      what: `virtualbox ${this.name}: waiting for the guest to report its IP (${IP_PROPERTY})`,
      hint: () => "the image needs VirtualBox guest additions and a DHCP lease on the host-only adapter",
    });
  }

  private async guestIP(signal?: AbortSignal): Promise<string | undefined> {
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

  private notFound(): NotFoundError {
    return new NotFoundError("machine", this.name, { driver: "virtualbox" });
  }

  private async waitForState(want: MachineState, timeoutMs: number, signal: AbortSignal | undefined, what: string, hint: string): Promise<void> {
    let last: MachineState = MachineState.Running;
    await pollUntil(
      async () => {
        last = await this.getState(signal);
        return last === want ? true : undefined;
      },
      { intervalMs: this.timing.pollIntervalMs, timeoutMs, signal, what, hint: () => `still ${last}; ${hint}` },
    );
  }

  async start(signal?: AbortSignal): Promise<void> {
    const state = await this.getState(signal);
    switch (state) {
      case MachineState.NotFound:
        throw this.notFound();
      case MachineState.Stopping:
        throw new ConflictError(`virtualbox ${this.name}: is stopping; start it once it has stopped`);
      case MachineState.Paused:
        this.report("start", "resuming VM");
        await this.vbox(["controlvm", this.name, "resume"], signal);
        break;
      case MachineState.Stopped:
      case MachineState.Saved:
      case MachineState.Error:
        this.report("start", "starting VM");
        await this.vbox(["startvm", this.name, "--type", "headless"], signal);
        break;
      default:
        // Running or Starting: nothing to do but wait for the address.
        break;
    }
    this.report("ip", "waiting for the guest to report its IP");
    await this.waitForIP(signal);
  }

  async stop(signal?: AbortSignal): Promise<void> {
    const state = await this.getState(signal);
    if (state === MachineState.NotFound) throw this.notFound();
    if (state !== MachineState.Running && state !== MachineState.Starting && state !== MachineState.Paused) return;
    if (state === MachineState.Paused) await this.vbox(["controlvm", this.name, "resume"], signal);
    this.report("stop", "sending ACPI power button");
    await this.vbox(["controlvm", this.name, "acpipowerbutton"], signal);
    await this.waitForState(
      MachineState.Stopped,
      this.timing.stopTimeoutMs,
      signal,
      `virtualbox ${this.name}: waiting for the guest to power off`,
      "use kill to power it off",
    );
  }

  async restart(signal?: AbortSignal): Promise<void> {
    if ((await this.getState(signal)) === MachineState.Running) await this.stop(signal);
    await this.start(signal);
  }

  async kill(signal?: AbortSignal): Promise<void> {
    const state = await this.getState(signal);
    if (state === MachineState.NotFound) throw this.notFound();
    if (isPoweredOn(state)) {
      this.report("kill", "powering off");
      await this.vbox(["controlvm", this.name, "poweroff"], signal);
    }
  }

  async remove(signal?: AbortSignal): Promise<void> {
    const state = await this.getState(signal);
    if (state !== MachineState.NotFound) {
      if (isPoweredOn(state)) {
        this.report("remove", "powering off");
        await this.vbox(["controlvm", this.name, "poweroff"], signal);
        // The VM's session lingers a moment after poweroff; unregistervm fails while it does.
        await this.waitForState(MachineState.Stopped, this.timing.stopTimeoutMs, signal, `virtualbox ${this.name}: waiting for power-off`, "retry remove");
      }
      this.report("remove", "unregistering VM and deleting its disks");
      await this.vbox(["unregistervm", this.name, "--delete"], signal);
    } else {
      this.report("remove", "no VM registered; removing files only");
    }
    await removeFiles([this.isoPath, this.keyPath, `${this.keyPath}.pub`, this.diskPath]);
  }

  async getIP(signal?: AbortSignal): Promise<string> {
    const state = await this.getState(signal);
    if (state === MachineState.NotFound) throw this.notFound();
    if (state !== MachineState.Running) throw new UnavailableError(`virtualbox ${this.name}: no IP while the machine is ${state}`, { state });
    const ip = await this.guestIP(signal);
    if (!ip) throw new UnavailableError(`virtualbox ${this.name}: the guest has not reported an IP yet (${IP_PROPERTY})`);
    return ip;
  }

  async getSSH(signal?: AbortSignal): Promise<SshEndpoint> {
    const info = await this.info(signal);
    if (!info) throw this.notFound();
    const fwd = findNatForward(info, "ssh");
    if (!fwd) throw new UnavailableError(`virtualbox ${this.name}: no "ssh" NAT port forward on nic1`);
    return { host: fwd.hostIp || "127.0.0.1", port: fwd.hostPort, user: GUEST_SSH_USER, keyPath: this.keyPath };
  }

  async getURL(signal?: AbortSignal): Promise<string> {
    return engineUrl(await this.getIP(signal));
  }
}

function isPoweredOn(state: MachineState): boolean {
  return state === MachineState.Running || state === MachineState.Paused || state === MachineState.Starting || state === MachineState.Stopping;
}

export const virtualboxDriver: DriverFactory<VirtualBoxOptions> = {
  name: "virtualbox",
  description: "VirtualBox VM on this host (VBoxManage), booted from a boot2docker-style ISO",
  options: virtualboxOptionSpecs,
  parseOptions: parseVirtualBoxOptions,
  bind: (ctx, options) => new VirtualBoxDriver(ctx, options),
};
