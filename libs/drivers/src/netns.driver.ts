// The netns driver: a "machine" on this very host, made of a network namespace (flt-<name>)
// joined to a host bridge by a veth pair, a private mount and UTS namespace in which the
// per-machine data dir is bind-mounted over /var/lib/flotilla-agent, and an sshd of its own
// listening on the machine's IP. Several machines share one box; nothing leaves the bridge.
// Needs root, iproute2, util-linux (nsenter, unshare) and openssh-server.
import { access, chmod, mkdir, readFile, readlink, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ConflictError, InvalidError, UnavailableError } from "@flotilla/core";
import { commandFailed } from "./command-runner";
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
import { KEY_FILE, reporter, writeMachineKey } from "./machine-files";
import { withHostLock } from "./lock";
import { defaultLockDir, ensurePrivateDir } from "./private-dir";
import { hostPort, probeTcp, type Cidr } from "./net";
import {
  allocateIp,
  adoptLegacyAllocations,
  allocatedIp,
  ensureBridge,
  ipRun,
  killMachineProcesses,
  linkExists,
  processIdentity,
  type ProcessIdentity,
  netnsExists,
  netnsName,
  releaseIp,
  removeBridgeIfUnused,
  vethName,
} from "./netns-host";
import { OptionReader, type OptionSpec, type RawOptions } from "./options";
import { pollUntil } from "./poll";

export interface NetnsOptions {
  /** The bridge's (gateway's) address and the machines' network: "198.18.0.1/16". */
  cidr: Cidr;
  bridge: string;
  sshdPath: string;
}

/** Where every netns machine sees its own data dir; the agent's root by default. */
export const NETNS_DATA_MOUNT = "/var/lib/flotilla-agent";
/**
 * Written into the data dir so the provisioner knows it is on a netns host: service files and
 * TLS material go inside the data dir (the host's /etc and /opt are shared by every machine).
 */
export const NETNS_HOST_MARKER = ".flotilla-netns-host";

const STATE_FILE = "netns.json";
const HOST_KEY = "ssh_host_ed25519_key";
const SSHD_CONFIG = "sshd_config";
const SSHD_PID = "sshd.pid";
const ROOT_DIR = "root";

interface NetnsState {
  ip: string;
  gateway: string;
  prefixLength: number;
  bridge: string;
  /**
   * The machine's sshd, whose mount namespace (the machine's, while that sshd lives) finds its
   * processes. Not the namespace's inode number: that is reused once the namespace is gone.
   */
  sshd?: ProcessIdentity;
}

export const netnsOptionSpecs: readonly OptionSpec[] = [
  {
    name: "netns-cidr",
    type: "cidr",
    default: "198.18.0.1/16",
    help: "Host bridge address and the machines' network (must be inside 198.18.0.0/15)",
  },
  { name: "netns-bridge", type: "string", default: "flmach0", help: "Name of the host bridge the machines are attached to" },
  { name: "netns-sshd-path", type: "path", default: "/usr/sbin/sshd", help: "sshd binary run inside each machine" },
];

export function parseNetnsOptions(raw: RawOptions): NetnsOptions {
  const r = new OptionReader("netns", netnsOptionSpecs, raw);
  const options: NetnsOptions = { cidr: r.cidr("netns-cidr"), bridge: r.string("netns-bridge")!, sshdPath: r.path("netns-sshd-path")! };
  r.done();
  // Test and development traffic stays in the benchmarking range (RFC 2544), never a real network.
  const inRange = (ip: string) => /^198\.(18|19)\./.test(ip);
  if (!inRange(options.cidr.network) || !inRange(options.cidr.broadcast)) {
    throw new InvalidError(`--netns-cidr must lie inside 198.18.0.0/15, got ${options.cidr.text}`, { field: "netns-cidr" });
  }
  if (!/^[a-zA-Z0-9_.-]{1,15}$/.test(options.bridge)) {
    throw new InvalidError(
      `--netns-bridge must be an interface name (1-15 letters, digits, "_", "." or "-"), got ${JSON.stringify(options.bridge)}`,
      {
        field: "netns-bridge",
      },
    );
  }
  return options;
}

export class NetnsDriver implements Driver {
  readonly driverName = "netns";
  readonly machineName: string;
  private readonly timing: DriverTiming;
  private readonly report: (step: string, message: string) => void;
  private readonly lockDir: string;

  constructor(
    private readonly ctx: DriverContext,
    readonly options: NetnsOptions,
  ) {
    validateMachineName(ctx.machineName);
    this.machineName = ctx.machineName;
    this.timing = { ...timingOf(ctx), ipTimeoutMs: ctx.timing?.ipTimeoutMs ?? 15_000, stopTimeoutMs: ctx.timing?.stopTimeoutMs ?? 10_000 };
    this.report = reporter(ctx, "netns");
    this.lockDir = ctx.lockDir ?? defaultLockDir();
  }

  get netns(): string {
    return netnsName(this.machineName);
  }
  private get netnsPath(): string {
    return `/run/netns/${this.netns}`;
  }
  private get veth(): string {
    return vethName(this.machineName);
  }
  private file(name: string): string {
    return join(this.ctx.storeDir, name);
  }
  /** The machine's own data dir, seen inside it at /var/lib/flotilla-agent. */
  get dataDir(): string {
    return this.file(ROOT_DIR);
  }
  /** Host-wide, per bridge: every store on the host draws addresses from the same file. */
  private get allocationFile(): string {
    return join(this.lockDir, `netns-${this.options.bridge}-ips.json`);
  }
  /** The allocation file, with what an older version kept in /tmp/flotilla-locks taken over. */
  private async ipFile(): Promise<string> {
    await ensurePrivateDir(this.lockDir);
    await adoptLegacyAllocations(this.allocationFile, join(tmpdir(), "flotilla-locks", `netns-${this.options.bridge}-ips.json`));
    return this.allocationFile;
  }
  private lock<T>(fn: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    return withHostLock(this.lockDir, `netns-${this.options.bridge}`, fn, { signal, purpose: `netns ${this.machineName}` });
  }

  private async readState(): Promise<NetnsState | undefined> {
    try {
      return JSON.parse(await readFile(this.file(STATE_FILE), "utf8")) as NetnsState;
    } catch {
      return undefined;
    }
  }
  private async writeState(state: NetnsState): Promise<void> {
    await writeFile(this.file(STATE_FILE), JSON.stringify(state, null, 2) + "\n");
  }

  async preCreateCheck(signal?: AbortSignal): Promise<void> {
    if (process.getuid?.() !== 0)
      throw new UnavailableError("netns driver: must run as root (network namespaces, bridges, mounts)", { step: "preCreateCheck" });
    for (const tool of ["ip", "nsenter", "unshare", "ssh-keygen"]) {
      const res = await this.ctx.runner.run("sh", ["-c", `command -v ${tool}`], { signal }).catch(() => undefined);
      if (!res || res.exitCode !== 0)
        throw new UnavailableError(`netns driver: ${tool} not found (install iproute2, util-linux, openssh-client)`, {
          step: "preCreateCheck",
        });
    }
    try {
      await access(this.options.sshdPath);
    } catch {
      throw new InvalidError(`--netns-sshd-path ${this.options.sshdPath}: no such file (install openssh-server)`, {
        field: "netns-sshd-path",
      });
    }
    if (await netnsExists(this.netns)) {
      throw new ConflictError(`netns ${this.machineName}: network namespace ${this.netns} already exists`, { step: "preCreateCheck" });
    }
  }

  async create(signal?: AbortSignal): Promise<void> {
    try {
      await mkdir(this.dataDir, { recursive: true });
      await writeFile(join(this.dataDir, NETNS_HOST_MARKER), `${this.machineName}\n`);
      this.report("keys", "generating the SSH client and host keys");
      const { publicKey } = await writeMachineKey(this.ctx.storeDir, this.machineName);
      await writeFile(this.file("authorized_keys"), publicKey + "\n", { mode: 0o600 });
      await rm(this.file(HOST_KEY), { force: true });
      const kg = await this.ctx.runner.run(
        "ssh-keygen",
        ["-q", "-t", "ed25519", "-N", "", "-C", `flotilla-host@${this.machineName}`, "-f", this.file(HOST_KEY)],
        {
          signal,
        },
      );
      if (kg.exitCode !== 0) throw commandFailed("ssh-keygen host key", kg);
      await chmod(this.file(HOST_KEY), 0o600);

      const ip = await this.lock(async () => {
        await ensureBridge(this.ctx.runner, this.options.bridge, this.options.cidr, signal);
        return allocateIp(await this.ipFile(), this.machineName, this.options.cidr);
      }, signal);
      await this.writeState({
        ip,
        gateway: this.options.cidr.address,
        prefixLength: this.options.cidr.prefixLength,
        bridge: this.options.bridge,
      });
      this.report("network", `namespace ${this.netns} with ${ip}/${this.options.cidr.prefixLength} on ${this.options.bridge}`);
      await this.plumb(ip, signal);
      await this.startSshd(ip, signal);
      this.report("ready", `sshd answers on ${hostPort(ip, 22)}`);
    } catch (e) {
      await this.remove().catch(() => undefined);
      throw e;
    }
  }

  /** Network namespace + veth pair + addresses + default route. */
  private async plumb(ip: string, signal?: AbortSignal): Promise<void> {
    const ns = this.netns;
    const peer = `${this.veth}p`;
    const { cidr, bridge } = this.options;
    await this.lock(() => ensureBridge(this.ctx.runner, bridge, cidr, signal), signal);
    if (!(await netnsExists(ns))) await ipRun(this.ctx.runner, `ip netns add ${ns}`, ["netns", "add", ns], signal);
    if (await linkExists(this.veth)) await ipRun(this.ctx.runner, `ip link del ${this.veth}`, ["link", "del", this.veth], signal);
    await ipRun(this.ctx.runner, `ip link add ${this.veth}`, ["link", "add", this.veth, "type", "veth", "peer", "name", peer], signal);
    await ipRun(this.ctx.runner, `ip link set ${peer} netns ${ns}`, ["link", "set", peer, "netns", ns], signal);
    await ipRun(this.ctx.runner, `ip link set ${this.veth} master ${bridge}`, ["link", "set", this.veth, "master", bridge, "up"], signal);
    const inNs = (args: string[]) => ipRun(this.ctx.runner, `ip -n ${ns} ${args.slice(0, 3).join(" ")}`, ["-n", ns, ...args], signal);
    await inNs(["link", "set", peer, "name", "eth0"]);
    await inNs(["addr", "add", `${ip}/${cidr.prefixLength}`, "dev", "eth0"]);
    await inNs(["link", "set", "lo", "up"]);
    await inNs(["link", "set", "eth0", "up"]);
    await inNs(["route", "add", "default", "via", cidr.address]);
    // The address may have belonged to an earlier machine (or this one before a reboot) with
    // another MAC: a stale neighbour entry on the host would blackhole it until it times out.
    await ipRun(this.ctx.runner, `ip neigh flush ${ip}`, ["neigh", "flush", "to", ip, "dev", bridge], signal).catch(() => undefined);
  }

  private async writeSshdConfig(ip: string): Promise<void> {
    await writeFile(
      this.file(SSHD_CONFIG),
      [
        `ListenAddress ${ip}:22`,
        `HostKey ${this.file(HOST_KEY)}`,
        `PidFile ${this.file(SSHD_PID)}`,
        `AuthorizedKeysFile ${this.file("authorized_keys")}`,
        "PubkeyAuthentication yes",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "PermitRootLogin prohibit-password",
        // The store dir's modes are the control plane's business, not sshd's.
        "StrictModes no",
        "UsePAM no",
        "PrintMotd no",
        "Subsystem sftp internal-sftp",
        "",
      ].join("\n"),
    );
  }

  /**
   * Starts sshd in the machine's namespaces. Ordering: nsenter joins the network namespace
   * (not `ip netns exec`, which remounts /sys and would hide the host's cgroup mounts the shim
   * needs); unshare makes the private mount + UTS namespaces; the bind mount and host name are
   * set before sshd starts, so every session (and the agent it starts) inherits them. The
   * machine gets a private /run/netns too: the network namespaces its agent names for its
   * containers then live and die with the machine, even when it is removed with containers running.
   */
  private async startSshd(ip: string, signal?: AbortSignal): Promise<void> {
    await mkdir("/run/sshd", { recursive: true, mode: 0o755 });
    await mkdir(NETNS_DATA_MOUNT, { recursive: true });
    await this.writeSshdConfig(ip);
    await rm(this.file(SSHD_PID), { force: true });
    const script =
      'hostname "$1" && mount --bind "$2" "$3" && mkdir -p /run/netns && mount -t tmpfs -o mode=0755 flotilla-netns /run/netns && exec "$4" -f "$5" -E "$6"';
    const res = await this.ctx.runner.run(
      "nsenter",
      [
        `--net=${this.netnsPath}`,
        "unshare",
        "--mount",
        "--uts",
        "--propagation",
        "private",
        "sh",
        "-c",
        script,
        "sh",
        this.machineName,
        this.dataDir,
        NETNS_DATA_MOUNT,
        this.options.sshdPath,
        this.file(SSHD_CONFIG),
        this.file("sshd.log"),
      ],
      { signal, timeoutMs: 30_000 },
    );
    if (res.exitCode !== 0) {
      const log = await readFile(this.file("sshd.log"), "utf8").catch(() => "");
      throw commandFailed("start sshd", { ...res, stderr: res.stderr + log });
    }
    const pid = await pollUntil(async () => this.sshdPid(), {
      intervalMs: 50,
      timeoutMs: this.timing.ipTimeoutMs,
      signal,
      what: `netns ${this.machineName}: waiting for sshd's pid file`,
    });
    const mountNs = await readlink(`/proc/${pid}/ns/mnt`);
    if (mountNs === (await readlink("/proc/self/ns/mnt"))) {
      throw new UnavailableError(`netns ${this.machineName}: sshd (pid ${pid}) runs in the host's mount namespace; refusing to record it`, {
        step: "start sshd",
      });
    }
    const sshd = await processIdentity(pid);
    const state = await this.readState();
    if (state && sshd) await this.writeState({ ...state, sshd });
    await pollUntil(async () => ((await probeTcp(ip, 22, 1000, signal)).ok ? true : undefined), {
      intervalMs: 50,
      timeoutMs: this.timing.ipTimeoutMs,
      signal,
      what: `netns ${this.machineName}: waiting for sshd on ${hostPort(ip, 22)}`,
    });
  }

  private async sshdPid(): Promise<number | undefined> {
    const text = await readFile(this.file(SSHD_PID), "utf8").catch(() => "");
    const pid = Number(text.trim());
    if (!Number.isInteger(pid) || pid <= 0) return undefined;
    try {
      process.kill(pid, 0);
      return pid;
    } catch {
      return undefined;
    }
  }

  private async requireState(): Promise<NetnsState> {
    const state = await this.readState();
    if (!state)
      throw new UnavailableError(`netns ${this.machineName}: no state in ${this.ctx.storeDir} (was it created?)`, { step: "state" });
    return state;
  }

  /** Re-creates the namespace (after a host reboot) and starts sshd. No-op when running. */
  async start(signal?: AbortSignal): Promise<void> {
    const state = await this.requireState();
    if ((await this.getState(signal)) === MachineState.Running) return;
    if (!(await netnsExists(this.netns)) || !(await linkExists(this.veth))) {
      this.report("network", `re-creating namespace ${this.netns}`);
      await ipRun(this.ctx.runner, `ip netns del ${this.netns}`, ["netns", "del", this.netns], signal).catch(() => undefined);
      await this.lock(async () => allocateIp(await this.ipFile(), this.machineName, this.options.cidr), signal);
      await this.plumb(state.ip, signal);
    }
    // Leftovers of an unclean stop would hold the address or the mount.
    await killMachineProcesses(this.netnsPath, state.sshd, "SIGKILL", 0, signal);
    this.report("sshd", "starting sshd");
    await this.startSshd(state.ip, signal);
  }

  /** Stops sshd, the agent and everything else running in the machine (SIGTERM, then SIGKILL). */
  async stop(signal?: AbortSignal): Promise<void> {
    const state = await this.readState();
    this.report("stop", "stopping every process of the machine");
    await killMachineProcesses(this.netnsPath, state?.sshd, "SIGTERM", this.timing.stopTimeoutMs, signal);
    await rm(this.file(SSHD_PID), { force: true });
  }

  async restart(signal?: AbortSignal): Promise<void> {
    await this.stop(signal);
    await this.start(signal);
  }

  async kill(signal?: AbortSignal): Promise<void> {
    const state = await this.readState();
    await killMachineProcesses(this.netnsPath, state?.sshd, "SIGKILL", 0, signal);
    await rm(this.file(SSHD_PID), { force: true });
  }

  /** Kills everything, deletes the namespace, veth, IP allocation and store dir; the bridge goes with the last machine. */
  async remove(signal?: AbortSignal): Promise<void> {
    const state = await this.readState();
    if (await netnsExists(this.netns)) await killMachineProcesses(this.netnsPath, state?.sshd, "SIGKILL", 0, signal);
    // The host end first: deleting a veth takes its peer with it at once, while a deleted
    // namespace's interfaces are cleaned up later by the kernel and would keep the bridge busy.
    if (await linkExists(this.veth))
      await ipRun(this.ctx.runner, `ip link del ${this.veth}`, ["link", "del", this.veth]).catch(async (e) => {
        if (await linkExists(this.veth)) throw e;
      });
    if (await netnsExists(this.netns)) await ipRun(this.ctx.runner, `ip netns del ${this.netns}`, ["netns", "del", this.netns]);
    await this.lock(async () => {
      await releaseIp(await this.ipFile(), this.machineName);
      await removeBridgeIfUnused(this.ctx.runner, this.options.bridge);
    });
    await rm(this.ctx.storeDir, { recursive: true, force: true });
  }

  /**
   * NotFound without a store; Stopped when the namespace is gone but the store is there (after a
   * host reboot: `start` re-creates it with the same IP) or sshd is not running.
   */
  async getState(signal?: AbortSignal): Promise<MachineState> {
    const state = await this.readState();
    if (!state) return MachineState.NotFound;
    if (!(await netnsExists(this.netns))) return MachineState.Stopped;
    if ((await this.sshdPid()) === undefined) return MachineState.Stopped;
    const probe = await probeTcp(state.ip, 22, Math.min(this.timing.sshTimeoutMs, 3000), signal);
    return probe.ok ? MachineState.Running : MachineState.Unreachable;
  }

  async getIP(): Promise<string> {
    const state = await this.readState();
    const ip = state?.ip ?? (await allocatedIp(await this.ipFile(), this.machineName));
    if (!ip) throw new UnavailableError(`netns ${this.machineName}: no IP allocated (was it created?)`, { step: "ip" });
    return ip;
  }

  /** The host key is the one this driver generated at create: pinned, never learnt. */
  async getSSH(): Promise<SshEndpoint> {
    const hostKey = (await readFile(this.file(`${HOST_KEY}.pub`), "utf8").catch(() => "")).trim();
    return { host: await this.getIP(), port: 22, user: "root", keyPath: this.file(KEY_FILE), ...(hostKey ? { hostKey } : {}) };
  }

  async getURL(): Promise<string> {
    return engineUrl(await this.getIP());
  }
}

export const netnsDriver: DriverFactory<NetnsOptions> = {
  name: "netns",
  description: "A local host in a network namespace on this machine, with its own sshd and data dir (development and tests; needs root)",
  options: netnsOptionSpecs,
  parseOptions: parseNetnsOptions,
  bind: (ctx, options) => new NetnsDriver(ctx, options),
};
