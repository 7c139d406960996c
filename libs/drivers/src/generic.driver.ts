// The generic driver: any existing host reachable over SSH. It creates nothing; `create` proves
// that SSH with the given key works and keeps a copy of the key in the machine store, and pins the
// host key it saw (trust on first use): every later connection refuses another key.
// It does not own the host, so it will not power it on or off; `restart` reboots it over SSH, as
// docker-machine's generic driver does.
import { isIP } from "node:net";
import { access, copyFile, chmod, mkdir } from "node:fs/promises";
import { homedir } from "node:os";
import { join } from "node:path";
import { InvalidError, NotSupportedError } from "@flotilla/core";
import { BaseDriver } from "./base.driver";
import { MachineState, type DriverContext, type DriverFactory, type SshEndpoint } from "./driver";
import { hostKeyPinOf, PINNED_HOST_KEY, removeFiles, withPinnedHostKey } from "./machine-files";
import { hostPort, probeTcp } from "./net";
import { OptionReader, type OptionSpec, type RawOptions } from "./options";
import { pollUntil } from "./poll";
import { readPrivateKey, sshError, sshRun } from "./ssh";

export interface GenericOptions {
  ipAddress: string;
  sshUser: string;
  /** undefined: the first of ~/.ssh/id_ed25519, ~/.ssh/id_rsa, ~/.ssh/id_ecdsa that exists. */
  sshKey?: string;
  sshPort: number;
}

/** The copy of the key kept in the machine store (the original may move or be rotated). */
const STORED_KEY = "id_ssh";
const DEFAULT_KEYS = ["id_ed25519", "id_rsa", "id_ecdsa"];

export const genericOptionSpecs: readonly OptionSpec[] = [
  { name: "generic-ip-address", type: "string", required: true, help: "IP address or host name of the host" },
  { name: "generic-ssh-user", type: "string", default: "root", help: "SSH user (root, or a user with password-less sudo)" },
  {
    name: "generic-ssh-key",
    type: "path",
    help: "Private key for SSH (unencrypted). Default: the first of ~/.ssh/id_ed25519, ~/.ssh/id_rsa, ~/.ssh/id_ecdsa",
  },
  { name: "generic-ssh-port", type: "int", default: 22, min: 1, max: 65535, help: "SSH port" },
];

const HOST_NAME = /^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

export function parseGenericOptions(raw: RawOptions): GenericOptions {
  const r = new OptionReader("generic", genericOptionSpecs, raw);
  const options: GenericOptions = {
    ipAddress: r.string("generic-ip-address")!,
    sshUser: r.string("generic-ssh-user")!,
    sshKey: r.path("generic-ssh-key"),
    sshPort: r.int("generic-ssh-port"),
  };
  r.done();
  if (isIP(options.ipAddress) === 0 && !HOST_NAME.test(options.ipAddress)) {
    throw new InvalidError(`--generic-ip-address must be an IP address or host name, got ${JSON.stringify(options.ipAddress)}`, {
      field: "generic-ip-address",
    });
  }
  if (!/^[A-Za-z0-9_][A-Za-z0-9_.-]*$/.test(options.sshUser)) {
    throw new InvalidError(`--generic-ssh-user must be a user name, got ${JSON.stringify(options.sshUser)}`, { field: "generic-ssh-user" });
  }
  return options;
}

export class GenericDriver extends BaseDriver<GenericOptions> {
  constructor(ctx: DriverContext, options: GenericOptions) {
    super("generic", ctx, options);
  }

  private get endpoint(): string {
    return hostPort(this.options.ipAddress, this.options.sshPort);
  }
  private get storedKey(): string {
    return join(this.ctx.storeDir, STORED_KEY);
  }
  private get pinFile(): string {
    return join(this.ctx.storeDir, PINNED_HOST_KEY);
  }

  /** The key the user pointed at, or the first default key that exists. */
  private async sourceKey(): Promise<string> {
    if (this.options.sshKey !== undefined) return this.options.sshKey;
    const candidates = DEFAULT_KEYS.map((k) => join(homedir(), ".ssh", k));
    for (const c of candidates) {
      if (await exists(c)) return c;
    }
    throw new InvalidError(`--generic-ssh-key not given and none of ${candidates.join(", ")} exists`, { field: "generic-ssh-key" });
  }

  async preCreateCheck(): Promise<void> {
    await readPrivateKey(await this.sourceKey(), "generic-ssh-key");
  }

  async create(signal?: AbortSignal): Promise<void> {
    const source = await this.sourceKey();
    const privateKey = await readPrivateKey(source, "generic-ssh-key");
    this.report("ssh", `checking SSH to ${this.options.sshUser}@${this.endpoint}`);
    await mkdir(this.ctx.storeDir, { recursive: true });
    const res = await sshRun(
      {
        host: this.options.ipAddress,
        port: this.options.sshPort,
        user: this.options.sshUser,
        privateKey,
        signal,
        timeoutMs: this.timing.sshTimeoutMs,
        hostKeyPin: hostKeyPinOf(this.ctx),
        machine: this.machineName,
      },
      "true",
      { timeoutMs: this.timing.sshTimeoutMs },
    );
    if (res.code !== 0) {
      throw sshError(
        this.endpoint,
        "exec",
        `\`true\` exited with ${res.code ?? `signal ${res.signal}`}${res.stderr.trim() ? `: ${res.stderr.trim()}` : ""}`,
      );
    }
    await copyFile(source, this.storedKey);
    await chmod(this.storedKey, 0o600);
    this.report("ready", `reachable at ${this.endpoint}`);
  }

  private refuse(what: string, hint: string): never {
    throw new NotSupportedError(`generic driver cannot ${what} a host it does not own; ${hint}`, { driver: "generic", operation: what });
  }

  async start(): Promise<void> {
    this.refuse("start", "power it on yourself");
  }
  async stop(): Promise<void> {
    this.refuse("stop", "shut it down yourself");
  }
  /**
   * Reboots the host over SSH (`reboot`, through `sudo -n` for other users than root) and waits
   * until it answers SSH again with a new boot id, so an SSH session that outlived the reboot
   * request is never taken for the host being back.
   */
  async restart(signal?: AbortSignal): Promise<void> {
    const { keyPath, hostKeyPin } = await this.getSSH();
    const privateKey = await readPrivateKey(keyPath, "generic-ssh-key");
    const target = {
      host: this.options.ipAddress,
      port: this.options.sshPort,
      user: this.options.sshUser,
      privateKey,
      signal,
      timeoutMs: this.timing.sshTimeoutMs,
      hostKeyPin,
      machine: this.machineName,
    };
    const bootId = async (): Promise<string | undefined> => {
      const r = await sshRun(target, "cat /proc/sys/kernel/random/boot_id", { timeoutMs: this.timing.sshTimeoutMs });
      return r.code === 0 ? r.stdout.trim() : undefined;
    };
    const before = await bootId();
    if (!before) throw sshError(this.endpoint, "exec", "cannot read /proc/sys/kernel/random/boot_id (not a Linux host?)");
    this.report("restart", `rebooting ${this.options.sshUser}@${this.endpoint} over SSH`);
    // Detached and a second later, so the command returns before the connection drops.
    const sudo = this.options.sshUser === "root" ? "" : "sudo -n ";
    const res = await sshRun(target, `${sudo}sh -c 'nohup sh -c "sleep 1; reboot" >/dev/null 2>&1 &'`, {
      timeoutMs: this.timing.sshTimeoutMs,
    });
    if (res.code !== 0)
      throw sshError(
        this.endpoint,
        "exec",
        `reboot: exit ${res.code ?? `signal ${res.signal}`}${res.stderr.trim() ? `: ${res.stderr.trim()}` : ""}`,
      );
    this.report("restart", `waiting for ${this.endpoint} to come back`);
    await pollUntil(
      async () => {
        signal?.throwIfAborted();
        const now = await bootId().catch(() => undefined);
        return now && now !== before ? true : undefined;
      },
      {
        intervalMs: this.timing.pollIntervalMs,
        timeoutMs: this.timing.ipTimeoutMs,
        signal,
        what: `generic ${this.machineName}: waiting for ${this.endpoint} to come back after the reboot`,
      },
    );
  }
  async kill(): Promise<void> {
    this.refuse("kill", "power it off yourself");
  }

  /** Forgets the host: deletes the stored key copy and the pinned host key; the host itself is left alone. */
  async remove(): Promise<void> {
    await removeFiles([this.storedKey, this.pinFile]);
  }

  /** Running when the SSH port accepts a TCP connection; otherwise Unreachable (never Stopped: we cannot know). */
  async getState(signal?: AbortSignal): Promise<MachineState> {
    const probe = await probeTcp(this.options.ipAddress, this.options.sshPort, this.timing.sshTimeoutMs, signal);
    return probe.ok ? MachineState.Running : MachineState.Unreachable;
  }

  async getIP(): Promise<string> {
    return this.options.ipAddress;
  }

  async getSSH(): Promise<SshEndpoint> {
    const keyPath = (await exists(this.storedKey)) ? this.storedKey : await this.sourceKey();
    return withPinnedHostKey(this.ctx, {
      host: this.options.ipAddress,
      port: this.options.sshPort,
      user: this.options.sshUser,
      keyPath,
    });
  }
}

async function exists(p: string): Promise<boolean> {
  try {
    await access(p);
    return true;
  } catch {
    return false;
  }
}

export const genericDriver: DriverFactory<GenericOptions> = {
  name: "generic",
  description: "An existing host reachable over SSH (nothing is created; the host is not powered on or off; restart reboots it over SSH)",
  options: genericOptionSpecs,
  parseOptions: parseGenericOptions,
  bind: (ctx, options) => new GenericDriver(ctx, options),
};
