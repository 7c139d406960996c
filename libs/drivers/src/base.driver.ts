// What the drivers share. BaseDriver: the bound machine (name check, timing, progress) and the
// engine URL. VmDriver: the lifecycle of a VM the driver owns (virtualbox, hyperv); each
// hypervisor fills in its commands (boot, resume, shut down, unregister, read the guest's IP).
import { ConflictError, NotFoundError, UnavailableError } from "@flotilla/core";
import { join } from "node:path";
import {
  engineUrl,
  MachineState,
  timingOf,
  validateMachineName,
  type Driver,
  type DriverContext,
  type DriverTiming,
  type SshEndpoint,
} from "./driver";
import { locateVmDisk, type VmDisk, type VmDiskFormat } from "./guest-disk";
import { KEY_FILE, removeFiles, reporter, SEED_FILE } from "./machine-files";
import { pollUntil } from "./poll";

export abstract class BaseDriver<O> implements Driver {
  readonly machineName: string;
  protected readonly timing: DriverTiming;
  protected readonly report: (step: string, message: string) => void;

  constructor(
    readonly driverName: string,
    protected readonly ctx: DriverContext,
    readonly options: O,
  ) {
    validateMachineName(ctx.machineName);
    this.machineName = ctx.machineName;
    this.timing = timingOf(ctx);
    this.report = reporter(ctx, driverName);
  }

  abstract preCreateCheck(signal?: AbortSignal): Promise<void>;
  abstract create(signal?: AbortSignal): Promise<void>;
  abstract start(signal?: AbortSignal): Promise<void>;
  abstract stop(signal?: AbortSignal): Promise<void>;
  abstract restart(signal?: AbortSignal): Promise<void>;
  abstract kill(signal?: AbortSignal): Promise<void>;
  abstract remove(signal?: AbortSignal): Promise<void>;
  abstract getState(signal?: AbortSignal): Promise<MachineState>;
  abstract getIP(signal?: AbortSignal): Promise<string>;
  abstract getSSH(signal?: AbortSignal): Promise<SshEndpoint>;

  async getURL(signal?: AbortSignal): Promise<string> {
    return engineUrl(await this.getIP(signal));
  }
}

/** A VM's option set always names its OS image (`--<driver>-boot2docker-url`): the Flotilla guest image. */
export interface VmOptions {
  imageUrl?: string;
}

export abstract class VmDriver<O extends VmOptions> extends BaseDriver<O> {
  /** Where the hypervisor reads the guest's IP, appended to the messages about it ("" if nothing to say). */
  protected abstract readonly ipSource: string;
  /** What the guest needs for its IP to show up, given when the wait for it times out. */
  protected abstract readonly ipHint: string;
  /** What to do when a graceful stop times out. */
  protected abstract readonly stopHint: string;
  /** The guest image's disk format the hypervisor attaches. */
  protected abstract readonly diskFormat: VmDiskFormat;

  /** The guest's IP as the hypervisor reports it; undefined until it does. */
  protected abstract guestIP(signal?: AbortSignal): Promise<string | undefined>;
  /** Boots a VM that is off, saved or in error. */
  protected abstract boot(signal?: AbortSignal): Promise<void>;
  /** Resumes a paused VM. */
  protected abstract resume(signal?: AbortSignal): Promise<void>;
  /** Asks the guest to shut down (it is running, starting or paused); `stop` then waits for Stopped. */
  protected abstract shutDown(state: MachineState, signal?: AbortSignal): Promise<void>;
  /** Powers off (if needed) and unregisters an existing VM; `remove` then deletes `ownFiles`. */
  protected abstract removeVM(state: MachineState, signal?: AbortSignal): Promise<void>;
  /** Every file and folder the driver made in the machine store. */
  protected abstract get ownFiles(): string[];

  protected get keyPath(): string {
    return join(this.ctx.storeDir, KEY_FILE);
  }
  /** The machine's seed disk (seed-iso.ts): hostname, SSH user and key for the guest's first boot. */
  protected get seedPath(): string {
    return join(this.ctx.storeDir, SEED_FILE);
  }

  /** The guest image's disk named by `--<driver>-boot2docker-url`, or the cached image's. */
  protected findImage(): Promise<VmDisk> {
    return locateVmDisk(`${this.driverName}-boot2docker-url`, this.options.imageUrl, this.diskFormat, this.ctx.cacheDir);
  }

  /** Runs the first call of the hypervisor's tool, turning "not on PATH" into an UnavailableError with `message`. */
  protected async needTool<T>(call: () => Promise<T>, message: string, check: string): Promise<T> {
    try {
      return await call();
    } catch (e) {
      if ((e as UnavailableError).details?.reason === "not-found") throw new UnavailableError(message, { check });
      throw e;
    }
  }

  /** ConflictError when the hypervisor already knows a VM by this machine's name. */
  protected async refuseExistingName(signal?: AbortSignal): Promise<void> {
    if ((await this.getState(signal)) !== MachineState.NotFound) {
      throw new ConflictError(`${this.driverName}: a VM named ${this.machineName} already exists`, { check: "name" });
    }
  }

  protected reportCleanup(cause: unknown): void {
    this.report("cleanup", `create failed (${(cause as Error)?.message ?? String(cause)}); removing what was made`);
  }

  protected notFound(): NotFoundError {
    return new NotFoundError("machine", this.machineName, { driver: this.driverName });
  }

  /** The VM's state; NotFoundError when there is no such VM. */
  protected async existingState(signal?: AbortSignal): Promise<MachineState> {
    const state = await this.getState(signal);
    if (state === MachineState.NotFound) throw this.notFound();
    return state;
  }

  protected async waitForIP(signal?: AbortSignal): Promise<string> {
    return pollUntil(() => this.guestIP(signal), {
      intervalMs: this.timing.pollIntervalMs,
      timeoutMs: this.timing.ipTimeoutMs,
      signal,
      what: `${this.driverName} ${this.machineName}: waiting for the guest to report its IP${this.ipSource}`,
      hint: () => this.ipHint,
    });
  }

  protected async waitForState(
    want: MachineState,
    timeoutMs: number,
    signal: AbortSignal | undefined,
    what: string,
    hint: string,
  ): Promise<void> {
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
    const state = await this.existingState(signal);
    switch (state) {
      case MachineState.Stopping:
        throw new ConflictError(`${this.driverName} ${this.machineName}: is stopping; start it once it has stopped`);
      case MachineState.Paused:
        this.report("start", "resuming VM");
        await this.resume(signal);
        break;
      case MachineState.Stopped:
      case MachineState.Saved:
      case MachineState.Error:
        this.report("start", "starting VM");
        await this.boot(signal);
        break;
      default:
        // Running or Starting: nothing to do but wait for the address.
        break;
    }
    this.report("ip", "waiting for the guest to report its IP");
    await this.waitForIP(signal);
  }

  async stop(signal?: AbortSignal): Promise<void> {
    const state = await this.existingState(signal);
    if (state !== MachineState.Running && state !== MachineState.Starting && state !== MachineState.Paused) return;
    await this.shutDown(state, signal);
    await this.waitForState(
      MachineState.Stopped,
      this.timing.stopTimeoutMs,
      signal,
      `${this.driverName} ${this.machineName}: waiting for the guest to power off`,
      this.stopHint,
    );
  }

  async remove(signal?: AbortSignal): Promise<void> {
    const state = await this.getState(signal);
    if (state !== MachineState.NotFound) await this.removeVM(state, signal);
    else this.report("remove", "no VM registered; removing files only");
    await removeFiles(this.ownFiles);
  }

  async getIP(signal?: AbortSignal): Promise<string> {
    const state = await this.existingState(signal);
    if (state !== MachineState.Running) {
      throw new UnavailableError(`${this.driverName} ${this.machineName}: no IP while the machine is ${state}`, { state });
    }
    const ip = await this.guestIP(signal);
    if (!ip) throw new UnavailableError(`${this.driverName} ${this.machineName}: the guest has not reported an IP yet${this.ipSource}`);
    return ip;
  }
}
