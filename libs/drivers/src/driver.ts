// The one interface every machine driver implements, and the context the caller hands it.
import { InvalidError } from "@flotilla/core";
import type { CommandRunner } from "./command-runner";
import type { OptionSpec, RawOptions } from "./options";
import type { HostKeyPin } from "./ssh";

/**
 * What a driver can observe about its machine. "Unreachable" means the driver could not find out
 * (the host did not answer); it is never reported as "Stopped", which is a fact the driver knows.
 */
export const MachineState = {
  Running: "Running",
  Stopped: "Stopped",
  Starting: "Starting",
  Stopping: "Stopping",
  Paused: "Paused",
  Saved: "Saved",
  Error: "Error",
  NotFound: "NotFound",
  Unreachable: "Unreachable",
} as const;
export type MachineState = (typeof MachineState)[keyof typeof MachineState];

/** How to reach a machine's SSH daemon with the key the driver installed or was given. */
export interface SshEndpoint {
  host: string;
  port: number;
  user: string;
  keyPath: string;
  /** The machine's SSH host key (OpenSSH public key line) when the driver knows it: connections pin it. */
  hostKey?: string;
  /**
   * Where the host key is pinned on first use (drivers that do not make the key themselves): SSH
   * connections read the pin from it, or pin the first key seen there.
   */
  hostKeyPin?: HostKeyPin;
}

/** One step of a long driver call, for progress bars and the machine's event stream. */
export interface DriverEvent {
  driver: string;
  machine: string;
  step: string;
  message: string;
}

/** Poll intervals and time limits. Drivers pick sensible values; tests shorten them. */
export interface DriverTiming {
  /** Delay between two polls of a machine's state or IP. */
  pollIntervalMs: number;
  /** How long `create`/`start` wait for the guest to report an IP address. */
  ipTimeoutMs: number;
  /** How long a graceful `stop` may take before it fails (use `kill` then). */
  stopTimeoutMs: number;
  /** Limit for one SSH connection attempt (connect + handshake + auth). */
  sshTimeoutMs: number;
  /** Limit for one external command (VBoxManage, powershell.exe). */
  commandTimeoutMs: number;
}

export const defaultTiming: DriverTiming = {
  pollIntervalMs: 1000,
  ipTimeoutMs: 180_000,
  stopTimeoutMs: 120_000,
  sshTimeoutMs: 10_000,
  commandTimeoutMs: 120_000,
};

/** What the caller (the provision worker, a test) gives a driver for one machine. */
export interface DriverContext {
  /** Machine name; also the VM name the hypervisor knows it by. */
  machineName: string;
  /** Directory owned by this machine in the machine store: keys, disks, the OS image copy. */
  storeDir: string;
  /** Runs external tools; inject one with a different PATH to use stand-ins. */
  runner: CommandRunner;
  /** Receives one event per step. */
  progress?: (event: DriverEvent) => void;
  /** Host-wide directory for lock files that serialize hypervisor operations across processes; private to this user (default: defaultLockDir()). */
  lockDir?: string;
  /**
   * Where the machine's SSH host key is pinned on first use: the control plane gives its machine
   * record. Without one (a driver used on its own: its tests, the machines bench) it is a file in
   * the store directory.
   */
  hostKeyPin?: HostKeyPin;
  /** The guest image cache root (default guestCacheRoot(), /var/cache/flotilla): the default image is its guest-<version>, URLs are looked up here, never downloaded. */
  cacheDir?: string;
  timing?: Partial<DriverTiming>;
}

/**
 * A machine driver bound to one machine. Every long call takes an AbortSignal; aborting rejects
 * with the signal's reason and stops polling. Operations a driver cannot do throw NotSupportedError.
 */
export interface Driver {
  /** Driver name as registered ("virtualbox"). */
  readonly driverName: string;
  readonly machineName: string;
  /** Checks everything that can be checked before anything is spent (tools, image, network). */
  preCreateCheck(signal?: AbortSignal): Promise<void>;
  /** Creates and boots the machine; returns once it has an IP. A failed create removes what it made. */
  create(signal?: AbortSignal): Promise<void>;
  /** Boots a stopped, saved or paused machine and waits for its IP. No-op when running. */
  start(signal?: AbortSignal): Promise<void>;
  /** Graceful shutdown; fails after the stop timeout rather than pulling the plug. */
  stop(signal?: AbortSignal): Promise<void>;
  /** Stop (when running) then start. */
  restart(signal?: AbortSignal): Promise<void>;
  /** Hard power-off. */
  kill(signal?: AbortSignal): Promise<void>;
  /** Powers off and deletes the machine and the driver's files; succeeds if it is already gone. */
  remove(signal?: AbortSignal): Promise<void>;
  getState(signal?: AbortSignal): Promise<MachineState>;
  /** The address other hosts and the control plane reach the machine on. */
  getIP(signal?: AbortSignal): Promise<string>;
  getSSH(signal?: AbortSignal): Promise<SshEndpoint>;
  /** Engine API URL of the machine's agent: tcp://IP:2376. */
  getURL(signal?: AbortSignal): Promise<string>;
}

/** A registered driver: its self-description, its option parser, and a constructor. */
export interface DriverFactory<O = unknown> {
  readonly name: string;
  /** One line for `ctl machine create --help` and the console's driver picker. */
  readonly description: string;
  /** Static description of the flags, rendered by the CLI and console without knowing the driver. */
  readonly options: readonly OptionSpec[];
  /** Parses raw flag values; throws InvalidError naming the flag. Pure: touches no file or tool. */
  parseOptions(raw: RawOptions): O;
  /** Binds a driver to one machine (does no I/O; `driver.create()` is what makes the machine). */
  bind(ctx: DriverContext, options: O): Driver;
}

export const ENGINE_PORT = 2376;

const MACHINE_NAME = /^[a-zA-Z0-9][a-zA-Z0-9.-]{0,62}$/;

/** Machine names become VM names, file names and host names; keep them to host-name characters. */
export function validateMachineName(name: string): void {
  if (!MACHINE_NAME.test(name)) {
    throw new InvalidError(
      `invalid machine name "${name}": use letters, digits, "-" and "." (starting with a letter or digit, at most 63)`,
      { field: "name" },
    );
  }
}

export function timingOf(ctx: DriverContext): DriverTiming {
  return { ...defaultTiming, ...ctx.timing };
}

export function engineUrl(ip: string): string {
  return `tcp://${ip.includes(":") ? `[${ip}]` : ip}:${ENGINE_PORT}`;
}
