// The virtualbox create flow: the host-only network and its DHCP server, the machine's own disk
// cloned from the Flotilla guest image's VMDK, the VM's hardware, NICs, storage and shares, then
// boot; and the undo of a failed create. The driver (virtualbox.driver.ts) hands it a VBoxCreateHost.
//
//   key → seed ISO → [host lock: host-only network + DHCP → clone image VMDK to disk.vdi, resize →
//   createvm → modifyvm (hardware, NAT + SSH forward, host-only NIC) → storage (disk, seed) →
//   shares → startvm] → wait for IP
import { writeFile } from "node:fs/promises";
import { networkInterfaces } from "node:os";
import { InvalidError, UnavailableError } from "@flotilla/core";
import type { CommandResult } from "./command-runner";
import type { DriverContext } from "./driver";
import { withHostLock } from "./lock";
import { defaultLockDir } from "./private-dir";
import { GUEST_SSH_USER, removeFiles, writeMachineKey } from "./machine-files";
import { findFreePort, hostInNetwork, ipv4ToInt, networkAddress, networksOverlap, prefixOfNetmask, type Cidr } from "./net";
import { seedIso } from "./seed-iso";
import type { VmDisk } from "./guest-disk";
import { parseDhcpServers, parseHostOnlyIfs } from "./virtualbox-output";
import type { VirtualBoxOptions } from "./virtualbox-options";

export const VBOX = "VBoxManage";
const SATA = "SATA";
/** All VirtualBox creates on a host take this lock (file `<lockDir>/virtualbox-create.lock`). */
export const VBOX_CREATE_LOCK = "virtualbox-create";

/** A folder shared into the VM. */
export interface VBoxShare {
  hostDir: string;
  name: string;
}

/** What the create flow uses of the driver. */
export interface VBoxCreateHost {
  readonly machineName: string;
  readonly ctx: DriverContext;
  readonly options: VirtualBoxOptions;
  readonly keyPath: string;
  readonly seedPath: string;
  readonly diskPath: string;
  report(step: string, message: string): void;
  reportCleanup(cause: unknown): void;
  /** Runs VBoxManage; a non-zero exit throws an error naming the subcommand unless `allowFail`. */
  vbox(args: string[], signal: AbortSignal | undefined, extra?: { input?: Buffer; allowFail?: boolean }): Promise<CommandResult>;
  /** The folder to share, if any. */
  share(): VBoxShare | undefined;
  findImage(): Promise<VmDisk>;
  waitForIP(signal?: AbortSignal): Promise<string>;
}

/** What a create has made so far, for the undo. */
interface Made {
  files: string[];
  disk: boolean;
  vm: boolean;
  started: boolean;
  cleaned: boolean;
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

/** InvalidError when the host-only CIDR overlaps a host-only interface (other than the one it reuses) or a host interface. */
export async function checkHostOnlyCidr(host: VBoxCreateHost, signal?: AbortSignal): Promise<void> {
  const cidr = host.options.hostonlyCidr;
  const ifs = parseHostOnlyIfs((await host.vbox(["list", "hostonlyifs"], signal)).stdout);
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

/**
 * Creates and boots the VM, then waits for its IP. A failure removes what was made (under the
 * host lock when VirtualBox's registry is involved) and rethrows.
 */
export async function createVirtualBoxVM(host: VBoxCreateHost, signal?: AbortSignal): Promise<void> {
  const made: Made = { files: [], disk: false, vm: false, started: false, cleaned: false };
  // VirtualBox corrupts its registry and host-only setup when VMs are created in parallel
  // (docker-machine users hit this with `create` loops), so everything that registers
  // something with VBoxSVC, or unregisters it again, runs under one host-wide lock. Waiting
  // for the guest's IP does not touch the registry and stays outside, so boots overlap.
  const locked = (fn: () => Promise<void>, lockSignal?: AbortSignal) =>
    withHostLock(host.ctx.lockDir ?? defaultLockDir(), VBOX_CREATE_LOCK, fn, {
      signal: lockSignal,
      purpose: `virtualbox create ${host.machineName}`,
      onWait: (holder) => host.report("lock", `waiting for another VirtualBox create (${holder})`),
    });
  const cleanup = async (cause: unknown) => {
    if (made.cleaned) return;
    made.cleaned = true;
    await cleanupFailedCreate(host, made, cause);
  };
  try {
    host.report("key", "generating SSH key");
    made.files.push(host.keyPath, `${host.keyPath}.pub`);
    const { publicKey } = await writeMachineKey(host.ctx.storeDir, host.machineName);

    const image = await host.findImage();
    host.report("seed", "writing the seed disk (hostname, SSH user and key)");
    made.files.push(host.seedPath);
    await writeFile(host.seedPath, seedIso({ hostname: host.machineName, user: GUEST_SSH_USER, publicKey }));
    signal?.throwIfAborted();

    await locked(async () => {
      try {
        await createLocked(host, signal, image, made);
      } catch (e) {
        await cleanup(e); // still holding the lock
        throw e;
      }
    }, signal);

    host.report("ip", "waiting for the guest to report its IP");
    const ip = await host.waitForIP(signal);
    host.report("ready", `running at ${ip}`);
  } catch (e) {
    if (!made.cleaned) {
      // Unregistering is registry work too: take the lock again, without the caller's signal.
      if (made.disk || made.vm) await locked(() => cleanup(e)).catch(() => undefined);
      else await cleanup(e);
    }
    throw e;
  }
}

async function createLocked(host: VBoxCreateHost, signal: AbortSignal | undefined, image: VmDisk, made: Made): Promise<void> {
  const name = host.machineName;
  const o = host.options;

  const hostonly = await ensureHostOnlyNetwork(host, signal);

  // The machine's disk is its own copy of the guest image: a VDI, because VirtualBox writes to
  // neither a stream-optimized VMDK (the image's form, compact to ship) nor resizes a VMDK. The
  // image is closed again at once so VirtualBox's media registry does not keep the cache's file
  // (a rebuilt image at the same path would then be refused for its new UUID). The guest grows
  // its root file system to the disk's size on first boot.
  host.report("disk", `cloning ${image.disk} into a ${o.diskSizeMB} MB disk`);
  made.disk = true;
  await host.vbox(["clonemedium", "disk", image.disk, host.diskPath, "--format", "VDI"], signal);
  await host.vbox(["closemedium", "disk", image.disk], signal, { allowFail: true });
  await host.vbox(["modifymedium", "disk", host.diskPath, "--resize", String(o.diskSizeMB)], signal);

  host.report("vm", "registering VM");
  await host.vbox(["createvm", "--name", name, "--basefolder", host.ctx.storeDir, "--register"], signal);
  made.vm = true;

  // The port is chosen just before it is registered; VirtualBox fails startvm if someone took it.
  const sshPort = await findFreePort();
  await host.vbox(
    [
      "modifyvm",
      name,
      "--ostype",
      "Linux26_64",
      "--cpus",
      String(o.cpuCount),
      "--memory",
      String(o.memoryMB),
      "--acpi",
      "on",
      "--ioapic",
      "on",
      "--rtcuseutc",
      "on",
      "--pae",
      "on",
      "--hpet",
      "on",
      "--boot1",
      "disk",
      "--boot2",
      "none",
      "--boot3",
      "none",
      "--boot4",
      "none",
    ],
    signal,
  );
  await host.vbox(
    [
      "modifyvm",
      name,
      "--nic1",
      "nat",
      "--nictype1",
      o.natNicType,
      "--cableconnected1",
      "on",
      "--natdnshostresolver1",
      "on",
      "--natdnsproxy1",
      "off",
      "--natpf1",
      `ssh,tcp,127.0.0.1,${sshPort},,22`,
    ],
    signal,
  );
  await host.vbox(
    [
      "modifyvm",
      name,
      "--nic2",
      "hostonly",
      "--nictype2",
      o.hostonlyNicType,
      "--nicpromisc2",
      o.hostonlyNicPromisc,
      "--hostonlyadapter2",
      hostonly,
      "--cableconnected2",
      "on",
    ],
    signal,
  );

  host.report("storage", "attaching the disk and the seed");
  await host.vbox(["storagectl", name, "--name", SATA, "--add", "sata", "--hostiocache", "on"], signal);
  await host.vbox(
    ["storageattach", name, "--storagectl", SATA, "--port", "0", "--device", "0", "--type", "hdd", "--medium", host.diskPath],
    signal,
  );
  await host.vbox(
    ["storageattach", name, "--storagectl", SATA, "--port", "1", "--device", "0", "--type", "dvddrive", "--medium", host.seedPath],
    signal,
  );

  const share = host.share();
  if (share) {
    await host.vbox(["sharedfolder", "add", name, "--name", share.name, "--hostpath", share.hostDir, "--automount"], signal);
    await host.vbox(["setextradata", name, `VBoxInternal2/SharedFoldersEnableSymlinksCreate/${share.name}`, "1"], signal);
  }

  host.report("start", "starting VM");
  await host.vbox(["startvm", name, "--type", "headless"], signal);
  made.started = true;
}

/** Finds the host-only interface holding the host address of the CIDR, or makes it; then its DHCP server. */
async function ensureHostOnlyNetwork(host: VBoxCreateHost, signal?: AbortSignal): Promise<string> {
  const c = host.options.hostonlyCidr;
  const ifs = parseHostOnlyIfs((await host.vbox(["list", "hostonlyifs"], signal)).stdout);
  let ifname = ifs.find((i) => i.ip === c.address && i.netmask === c.netmask)?.name;
  if (!ifname) {
    host.report("network", `creating host-only interface for ${c.text}`);
    const created = await host.vbox(["hostonlyif", "create"], signal);
    ifname = /Interface '([^']+)' was successfully created/.exec(created.stdout)?.[1];
    if (!ifname) {
      throw new UnavailableError(
        `${VBOX} hostonlyif create: cannot find the new interface's name in ${JSON.stringify(created.stdout.trim())}`,
        {
          step: `${VBOX} hostonlyif`,
        },
      );
    }
    await host.vbox(["hostonlyif", "ipconfig", ifname, "--ip", c.address, "--netmask", c.netmask], signal);
  }

  const plan = dhcpPlan(c);
  const servers = parseDhcpServers((await host.vbox(["list", "dhcpservers"], signal)).stdout);
  const existing = servers.find((s) => s.networkName === `HostInterfaceNetworking-${ifname}`);
  const wanted = [
    "--ifname",
    ifname,
    "--ip",
    plan.serverIp,
    "--netmask",
    c.netmask,
    "--lowerip",
    plan.lowerIp,
    "--upperip",
    plan.upperIp,
    "--enable",
  ];
  if (!existing) {
    await host.vbox(["dhcpserver", "add", ...wanted], signal);
  } else if (
    existing.ip !== plan.serverIp ||
    existing.netmask !== c.netmask ||
    existing.lowerIp !== plan.lowerIp ||
    existing.upperIp !== plan.upperIp ||
    !existing.enabled
  ) {
    await host.vbox(["dhcpserver", "modify", ...wanted], signal);
  }
  return ifname;
}

/**
 * Undoes a failed create without the caller's signal (it may be the reason we are here).
 * A registered VM takes its disk with it (`unregistervm --delete`); a disk that never got a VM
 * is closed and deleted on its own. The host-only network stays: other machines share it.
 */
async function cleanupFailedCreate(host: VBoxCreateHost, made: Made, cause: unknown): Promise<void> {
  host.reportCleanup(cause);
  const quietly = async (args: string[]) => {
    try {
      await host.vbox(args, undefined, { allowFail: true });
    } catch {
      // Best effort: the original error is what the caller needs to see.
    }
  };
  if (made.started) await quietly(["controlvm", host.machineName, "poweroff"]);
  if (made.vm) await quietly(["unregistervm", host.machineName, "--delete"]);
  else if (made.disk) await quietly(["closemedium", "disk", host.diskPath, "--delete"]);
  await removeFiles([...made.files, host.diskPath]);
}
