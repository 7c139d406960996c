// Kernel plumbing for the netns driver: the host bridge, IP allocation, veth pairs, and finding
// every process that belongs to a machine. Each helper is one or a few `ip` calls through the
// injected CommandRunner, so errors keep the tool's words and name the step.
import { createHash } from "node:crypto";
import { lstat, open, readdir, readFile, readlink, rm, stat } from "node:fs/promises";
import { dirname } from "node:path";
import { ConflictError, UnavailableError } from "@flotilla/core";
import { commandFailed, type CommandRunner } from "./command-runner";
import { intToIpv4, ipv4ToInt, networkAddress, networksOverlap, type Cidr } from "./net";
import { sleep } from "./poll";
import { readFileNoFollow, writeFileNoFollow } from "./private-dir";

/** Network namespace name of a machine. */
export const netnsName = (machine: string) => `flt-${machine}`;

/**
 * Host side of a machine's veth pair. Interface names are limited to 15 bytes and machine names
 * are up to 63, so the name is a hash: "flv" + 10 hex digits.
 */
export function vethName(machine: string): string {
  return `flv${createHash("sha256").update(machine).digest("hex").slice(0, 10)}`;
}

export async function ipRun(runner: CommandRunner, step: string, args: string[], signal?: AbortSignal): Promise<string> {
  const res = await runner.run("ip", args, { signal, timeoutMs: 30_000 });
  if (res.exitCode !== 0) throw commandFailed(step, res);
  return res.stdout;
}

export async function linkExists(name: string): Promise<boolean> {
  return readFile(`/sys/class/net/${name}/ifindex`).then(
    () => true,
    () => false,
  );
}

export async function netnsExists(name: string): Promise<boolean> {
  return readFile(`/run/netns/${name}`).then(
    () => true,
    (e: NodeJS.ErrnoException) => e.code !== "ENOENT",
  );
}

/** Creates the bridge with the gateway address if missing; idempotent. */
export async function ensureBridge(runner: CommandRunner, bridge: string, gateway: Cidr, signal?: AbortSignal): Promise<void> {
  // Another interface in the same network would take the route and the machines would be unreachable.
  const all = await ipRun(runner, "ip addr show", ["-4", "-o", "addr", "show"], signal);
  for (const line of all.split("\n")) {
    const m = /^\d+:\s+(\S+)\s+inet\s+(\d+\.\d+\.\d+\.\d+)\/(\d+)/.exec(line);
    if (!m || m[1] === bridge) continue;
    if (networksOverlap({ network: networkAddress(m[2], Number(m[3])), prefixLength: Number(m[3]) }, gateway)) {
      throw new ConflictError(
        `netns: ${gateway.network}/${gateway.prefixLength} overlaps ${m[2]}/${m[3]} on ${m[1]}; pick another --netns-cidr or remove ${m[1]}`,
        {
          step: "bridge",
          field: "netns-cidr",
        },
      );
    }
  }
  if (!(await linkExists(bridge))) {
    await ipRun(runner, `ip link add ${bridge}`, ["link", "add", bridge, "type", "bridge"], signal);
  }
  const addrs = await ipRun(runner, `ip addr show ${bridge}`, ["-4", "-o", "addr", "show", "dev", bridge], signal);
  if (!addrs.includes(` ${gateway.address}/${gateway.prefixLength} `)) {
    await ipRun(runner, `ip addr add ${gateway.text}`, ["addr", "add", gateway.text, "dev", bridge], signal);
  }
  await ipRun(runner, `ip link set ${bridge} up`, ["link", "set", bridge, "up"], signal);
}

/** Deletes the bridge when no machine's veth is attached to it any more. */
export async function removeBridgeIfUnused(runner: CommandRunner, bridge: string): Promise<void> {
  if (!(await linkExists(bridge))) return;
  const ports = await readdir(`/sys/class/net/${bridge}/brif`).catch(() => [] as string[]);
  if (ports.length === 0) await ipRun(runner, `ip link del ${bridge}`, ["link", "del", bridge]);
}

/** Allocation file: machine name → IP, per bridge, shared by every store on the host. */
type Allocations = Record<string, string>;

async function readAllocations(file: string): Promise<Allocations> {
  try {
    return JSON.parse(await readFileNoFollow(file)) as Allocations;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return {};
    throw new UnavailableError(`netns: allocation file ${file} is unreadable: ${(e as Error).message}`, { step: "allocate ip" });
  }
}

/**
 * The machine's IP: its existing allocation, or the lowest free address after the gateway.
 * Call under the host lock. Addresses of the network that are in use by anything else on the
 * bridge are not known here: the bridge is Flotilla's own.
 */
export async function allocateIp(file: string, machine: string, gateway: Cidr): Promise<string> {
  const all = await readAllocations(file);
  if (all[machine]) return all[machine];
  const used = new Set([...Object.values(all), gateway.address]);
  const first = ipv4ToInt(gateway.network)! + 1;
  const last = ipv4ToInt(gateway.broadcast)! - 1;
  for (let n = first; n <= last; n++) {
    const ip = intToIpv4(n);
    if (!used.has(ip)) {
      all[machine] = ip;
      await writeFileNoFollow(file, JSON.stringify(all, null, 2) + "\n");
      return ip;
    }
  }
  throw new UnavailableError(`netns: no free address left in ${gateway.network}/${gateway.prefixLength}`, { step: "allocate ip" });
}

/**
 * Takes over the allocations kept in /tmp/flotilla-locks before the lock dir became private, so
 * machines made then keep their addresses. Only from a dir and file this user owns that nobody
 * else can write (otherwise someone else may have written them), and only once.
 */
export async function adoptLegacyAllocations(file: string, legacyFile: string): Promise<void> {
  if (
    await lstat(file).then(
      () => true,
      () => false,
    )
  )
    return;
  const uid = process.getuid?.();
  const trusted = async (p: string) => {
    const st = await lstat(p).catch(() => undefined);
    return !!st && !st.isSymbolicLink() && (uid === undefined || st.uid === uid) && (st.mode & 0o022) === 0;
  };
  if (!(await trusted(dirname(legacyFile))) || !(await trusted(legacyFile))) return;
  const text = await readFileNoFollow(legacyFile).catch(() => undefined);
  if (text !== undefined) await writeFileNoFollow(file, text);
}

/** Releases the machine's IP; returns how many allocations remain. */
export async function releaseIp(file: string, machine: string): Promise<number> {
  const all = await readAllocations(file);
  if (machine in all) delete all[machine];
  // The last machine of a bridge takes the file with it: nothing is left behind.
  if (Object.keys(all).length === 0) await rm(file, { force: true });
  else await writeFileNoFollow(file, JSON.stringify(all, null, 2) + "\n");
  return Object.keys(all).length;
}

export async function allocatedIp(file: string, machine: string): Promise<string | undefined> {
  return (await readAllocations(file))[machine];
}

async function readStat(pid: number): Promise<{ ppid: number; startTime: string } | undefined> {
  try {
    const text = await readFile(`/proc/${pid}/stat`, "utf8");
    // The command name may contain spaces and parentheses: split after the last ")". Fields
    // from there: state (3), ppid (4), ..., starttime (22).
    const rest = text.slice(text.lastIndexOf(")") + 2).split(" ");
    return { ppid: Number(rest[1]), startTime: rest[19] };
  } catch {
    return undefined;
  }
}

/** A process by pid and start time (ticks since boot), so that a reused pid is not taken for it. */
export interface ProcessIdentity {
  pid: number;
  startTime: string;
}

export async function processIdentity(pid: number): Promise<ProcessIdentity | undefined> {
  const st = await readStat(pid);
  return st && { pid, startTime: st.startTime };
}

/**
 * Holds the mount namespace of `process` open while that very process still lives, and names
 * it. A namespace's inode number is handed to the next namespace made anywhere on the host as
 * soon as the last process leaves it, so a number recorded earlier may by now name another
 * machine's container; an open namespace file keeps the number from being reused until released.
 */
export async function pinMountNs(process?: ProcessIdentity): Promise<{ ns: string; release(): Promise<void> } | undefined> {
  if (!process) return undefined;
  const file = await open(`/proc/${process.pid}/ns/mnt`, "r").catch(() => undefined);
  if (!file) return undefined;
  // Checked after opening: the pid may have been reused between the record and the open.
  if ((await readStat(process.pid))?.startTime !== process.startTime) {
    await file.close();
    return undefined;
  }
  const { ino } = await file.stat();
  return { ns: `mnt:[${ino}]`, release: () => file.close() };
}

async function nsOf(pid: number, ns: "net" | "mnt"): Promise<string | undefined> {
  return readlink(`/proc/${pid}/ns/${ns}`).catch(() => undefined);
}

/**
 * Every process of a machine: those in its network namespace or in the mount namespace its
 * sshd runs in, plus all their descendants (containers run by the shim live in namespaces of
 * their own but stay children of the shim).
 */
export async function machineProcesses(netnsPath: string, recordedMountNs: string | undefined): Promise<number[]> {
  // /run/netns/NAME is a bind mount of the namespace's nsfs inode; /proc/PID/ns/net reads "net:[INODE]".
  const st = await stat(netnsPath).catch(() => undefined);
  const [hostNet, hostMnt] = await Promise.all([nsOf(process.pid, "net"), nsOf(process.pid, "mnt")]);
  // Never match the namespaces this process lives in: a stale record (a reused pid, a failed
  // unshare) would otherwise make "the machine's processes" every process on the host.
  const netns = st && `net:[${st.ino}]` !== hostNet ? `net:[${st.ino}]` : undefined;
  const mountNs = recordedMountNs && recordedMountNs !== hostMnt ? recordedMountNs : undefined;
  if (!netns && !mountNs) return [];
  const pids = (await readdir("/proc")).filter((d) => /^\d+$/.test(d)).map(Number);
  const parent = new Map<number, number>();
  const members = new Set<number>();
  await Promise.all(
    pids.map(async (pid) => {
      if (pid === process.pid) return;
      const st = await readStat(pid);
      if (!st) return;
      parent.set(pid, st.ppid);
      const [net, mnt] = await Promise.all([netns ? nsOf(pid, "net") : undefined, mountNs ? nsOf(pid, "mnt") : undefined]);
      if ((netns && net === netns) || (mountNs && mnt === mountNs)) members.add(pid);
    }),
  );
  // Descendants of members.
  let grew = true;
  while (grew) {
    grew = false;
    for (const [pid, ppid] of parent) {
      if (!members.has(pid) && members.has(ppid)) {
        members.add(pid);
        grew = true;
      }
    }
  }
  return [...members].sort((a, b) => a - b);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

/**
 * Sends `sig` to every process of the machine (its network namespace, and the mount namespace of
 * its sshd while that sshd lives), repeating the search (processes may fork while dying) until
 * none is left or the time is up; SIGKILL after the grace time.
 */
export async function killMachineProcesses(
  netnsPath: string,
  sshd: ProcessIdentity | undefined,
  sig: NodeJS.Signals,
  graceMs: number,
  signal?: AbortSignal,
): Promise<void> {
  const mountNs = await pinMountNs(sshd);
  try {
    await killUntilGone(netnsPath, mountNs?.ns, sig, graceMs, signal);
  } finally {
    await mountNs?.release();
  }
}

async function killUntilGone(
  netnsPath: string,
  mountNs: string | undefined,
  sig: NodeJS.Signals,
  graceMs: number,
  signal?: AbortSignal,
): Promise<void> {
  const deadline = Date.now() + graceMs;
  let current: NodeJS.Signals = sig;
  for (;;) {
    const pids = (await machineProcesses(netnsPath, mountNs)).filter(alive);
    if (pids.length === 0) return;
    for (const pid of pids) {
      try {
        process.kill(pid, current);
      } catch {
        // gone already
      }
    }
    if (Date.now() > deadline) current = "SIGKILL";
    if (Date.now() > deadline + 5000) {
      throw new UnavailableError(`netns: processes ${pids.join(", ")} survived SIGKILL`, { step: "kill" });
    }
    await sleep(100, signal);
  }
}
