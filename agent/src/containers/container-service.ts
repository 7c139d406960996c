/**
 * The container lifecycle behind the Engine API: create, start, stop, kill, restart, wait and
 * remove, run through flotilla-shim; exits noticed by ExitMonitor and acted on (restart policy,
 * AutoRemove, waiters, events). Creating is in container-create.ts, starting in
 * container-runner.ts, re-adopting after an agent restart in container-adopt.ts (records persist in
 * ContainerStore), attach-before-start in start-gate.ts, restart timers in restart-timers.ts, the
 * run state's moves in container-state.ts.
 */
import { ConflictError } from "@flotilla/core";
import { HttpError, NotModifiedError } from "../engine-errors";
import type { EventBus } from "../events/event-bus";
import type { ImageStore } from "../images";
import type { VolumeStore } from "../volumes/volume-store";
import type { ContainerRecord } from "./container-types";
import { readopt } from "./container-adopt";
import { releaseNetworks } from "./container-networks";
import { stateAfterExit, stateAfterFailedStart, stateAfterStart } from "./container-state";
import { ContainerStore } from "./container-store";
import { createContainer } from "./container-create";
import type { CreateBody } from "./create-request";
import { ExitMonitor } from "./exit-monitor";
import { StartGate } from "./start-gate";
import { Waiters, within, type WaitCondition, type WaitResult } from "./waiters";
import { RestartTimers } from "./restart-timers";
import type { NetworkPort } from "./network-port";
import { restartDelayMs, shouldRestart } from "./restart-policy";
import { ContainerRunner } from "./container-runner";
import { TaskFiles } from "./task-files";
import { join } from "node:path";
import { cgroupOf } from "./cgroup-files";
import { thaw } from "./freezer";
import { readShimState, shimAlive, shimSignal, signalNumber, type ShimState } from "./shim-client";

export interface ContainerServiceDeps {
  root: string;
  images: ImageStore;
  volumes: VolumeStore;
  events: EventBus;
  /** The bridge network module, or null (bridge containers get loopback only). */
  network: NetworkPort | null;
  shimPath: string;
  /** Bind sources refused (a machine sharing the control plane's host); empty: none. */
  denyBinds?: readonly string[];
  log?: (msg: string) => void;
}

const STOP_GRACE_DEFAULT_S = 10;
/** How long to wait for the exit after SIGKILL before declaring the container wedged. */
const KILL_WAIT_MS = 15_000;

export class ContainerService {
  readonly store: ContainerStore;
  private readonly runner: ContainerRunner;
  private readonly files: TaskFiles;
  private readonly monitor: ExitMonitor;
  private readonly waiters = new Waiters();
  private readonly restarts = new RestartTimers();
  /** Containers whose start is in progress: a second start is a 304, an exit check waits. */
  private readonly starting = new Map<string, Promise<void>>();
  private readonly exiting = new Set<string>();
  /** Containers this agent has signalled since they started: any other signalled exit came from outside. */
  private readonly signalled = new Set<string>();
  /** Attach calls waiting for a start (see untilStarted, holdOutputForAttach). */
  private readonly gate = new StartGate();
  private closed = false;

  constructor(private readonly deps: ContainerServiceDeps) {
    this.store = new ContainerStore(deps.root);
    this.files = new TaskFiles(join(deps.root, "task-files"));
    this.runner = new ContainerRunner({ ...deps, store: this.store, files: this.files });
    this.monitor = new ExitMonitor((id, fromPoll) => this.checkExit(id, fromPoll));
  }

  private log = (msg: string): void => this.deps.log?.(msg);

  /** Event attributes Docker sends for containers: name, image and the labels. */
  attributes(c: ContainerRecord, extra: Record<string, string> = {}): Record<string, string> {
    return { ...c.config.Labels, image: c.image, name: c.name.slice(1), ...extra };
  }

  /**
   * Loads the records and re-adopts: containers whose shim still runs are watched again, the
   * network module keeps their addresses and ports, the rest are marked exited; then restart
   * policies and AutoRemove apply to what stopped while the agent was away.
   */
  async init(): Promise<void> {
    const live = await readopt(this.store, this.monitor, (c) =>
      this.deps.events.emit("container", "die", c.id, this.attributes(c, { exitCode: String(c.state.exitCode) })),
    );
    const restored = await this.deps.network?.restore(live);
    for (const lost of restored?.lost ?? []) {
      // Running without its network: kill it so its restart policy brings it back attached.
      const c = this.store.find(lost.containerId);
      if (c) this.signal(c, 9, `it lost its network (${lost.reason}) while the agent was away; its restart policy brings it back attached`);
    }
    for (const c of this.store.all()) {
      if (c.state.status !== "exited") continue;
      if (shouldRestart(c, "agent-start")) this.scheduleRestart(c, 0);
      else if (c.hostConfig.AutoRemove)
        await this.remove(c.id, { force: true, volumes: true }).catch((e) => this.log(`auto-remove ${c.id}: ${(e as Error).message}`));
    }
  }

  /** Stops watching; running containers keep running under their shims. */
  close(): void {
    this.closed = true;
    this.monitor.close();
    this.restarts.clear();
  }

  get = (ref: string): ContainerRecord => this.store.get(ref);
  all = (): ContainerRecord[] => this.store.all();

  /** POST /containers/create. Validation first: a refused request leaves nothing behind. */
  create(body: CreateBody, nameParam: string | null): Promise<{ Id: string; Warnings: string[] }> {
    return createContainer(
      {
        ...this.deps,
        store: this.store,
        files: this.files,
        userNetworks: this.deps.network?.user ?? null,
        overlayNetworks: this.deps.network?.overlay ?? null,
        attributes: (c) => this.attributes(c),
      },
      body,
      nameParam,
    );
  }

  /** POST /containers/{id}/start. 304 when already running. */
  async start(ref: string): Promise<void> {
    const c = this.store.get(ref);
    if (c.state.status === "running" || this.starting.has(c.id)) throw new NotModifiedError();
    if (c.state.status === "removing") throw new ConflictError(`container ${c.id} is marked for removal and cannot be started`);
    this.cancelRestart(c);
    c.manualStop = false;
    await this.launch(c, false);
  }

  /** Runs the container's shim; on failure records the error and wakes attach/wait callers. */
  private async launch(c: ContainerRecord, isRestart: boolean): Promise<void> {
    let done!: () => void;
    this.starting.set(c.id, new Promise<void>((r) => (done = r)));
    let failure: unknown;
    try {
      await this.gate.stoppedWorkDone(c.id); // a docker cp into the stopped container finishes first
      const started = await this.runner.run(c, { attachWait: this.gate.held(c.id) });
      c.state = stateAfterStart(c.state, started.state);
      c.network = started.network;
      if (isRestart) c.restartCount++;
      await this.store.save(c);
      this.monitor.watch(c.id, this.store.paths(c.id).stateDir);
      this.deps.events.emit("container", "start", c.id, this.attributes(c));
      this.gate.notify(c.id, true);
    } catch (err) {
      this.gate.notify(c.id, false);
      c.state = stateAfterFailedStart(c.state, err);
      await this.store.save(c).catch(() => {});
      this.waiters.settle(c.id, "exit", { StatusCode: c.state.exitCode, Error: { Message: c.state.error } });
      failure = err;
    } finally {
      this.starting.delete(c.id);
      done();
    }
    if (failure) {
      // Outside the start guard: remove() waits for a start in progress.
      if (c.hostConfig.AutoRemove) await this.remove(c.id, { force: true, volumes: true }).catch(() => {});
      throw failure;
    }
    // It may have exited before the watch began.
    this.checkExit(c.id, false);
  }

  /** Reads the shim state of a running container and handles an exit once. */
  private checkExit(id: string, fromPoll: boolean): void {
    const c = this.store.find(id);
    if (!c || c.state.status !== "running" || this.exiting.has(id) || this.starting.has(id)) return;
    const { stateDir } = this.store.paths(id);
    const s = readShimState(stateDir);
    const mine = s && s.shimPid === c.state.shimPid;
    if (mine && s.status === "exited") return void this.onExit(c, s);
    // A shim that died without recording the exit (SIGKILLed) leaves no reader on the FIFO.
    if (fromPoll && !shimAlive(stateDir)) {
      const again = readShimState(stateDir);
      void this.onExit(c, again && again.shimPid === c.state.shimPid && again.status === "exited" ? again : null);
    }
  }

  private async onExit(c: ContainerRecord, s: ShimState | null): Promise<void> {
    this.exiting.add(c.id);
    let autoRemove = false;
    try {
      this.monitor.unwatch(c.id);
      const ranForMs = Date.now() - Date.parse(c.state.startedAt ?? new Date().toISOString());
      c.state = stateAfterExit(c.state, s, "the container's shim died without recording the exit");
      const byAgent = this.signalled.delete(c.id);
      const outside =
        !byAgent && (c.state.exitCode > 128 || !s)
          ? ` (not signalled by this agent: ${s ? `signal ${c.state.exitCode - 128} came from outside` : c.state.error})`
          : "";
      this.log(`container ${c.id.slice(0, 12)} (${c.name.slice(1)}) exited with code ${c.state.exitCode}${outside}`);
      await releaseNetworks(this.deps.network, c, this.log);
      c.network = null;
      const restart = !this.closed && shouldRestart(c, "exit");
      if (restart) c.state.status = "restarting";
      await this.store.save(c);
      if (c.state.oomKilled) this.deps.events.emit("container", "oom", c.id, this.attributes(c));
      this.deps.events.emit("container", "die", c.id, this.attributes(c, { exitCode: String(c.state.exitCode) }));
      this.waiters.settle(c.id, "exit", { StatusCode: c.state.exitCode, Error: null });
      if (restart) this.scheduleRestart(c, restartDelayMs(c.restartCount, ranForMs));
      else autoRemove = c.hostConfig.AutoRemove;
    } finally {
      this.exiting.delete(c.id);
    }
    // After `exiting` is cleared: remove() waits for exit processing to finish. Like `docker run
    // --rm`, AutoRemove takes the container's anonymous volumes with it.
    if (autoRemove)
      await this.remove(c.id, { force: true, volumes: true }).catch((e) => this.log(`auto-remove ${c.id}: ${(e as Error).message}`));
  }

  private scheduleRestart(c: ContainerRecord, delayMs: number): void {
    this.restarts.schedule(c.id, delayMs, () => {
      if (this.closed || this.store.find(c.id) !== c) return;
      this.launch(c, true).catch((e) => this.log(`restart ${c.id}: ${(e as Error).message}`));
    });
  }

  private cancelRestart(c: ContainerRecord): boolean {
    return this.restarts.cancel(c.id);
  }

  /** True while a start of the container is in progress (pause, exec and attach wait for it). */
  isStarting(id: string): boolean {
    return this.starting.has(id);
  }

  /** Resolves at the container's next start: true once it runs, false when the start failed. */
  untilStarted(id: string): Promise<boolean> {
    return this.gate.untilStarted(id);
  }

  /** See StartGate: work on a stopped container's file system, which a start waits for. */
  whileStopped<T>(id: string, work: () => Promise<T>): Promise<T> {
    return this.gate.whileStopped(id, work);
  }

  /** See StartGate: the next start holds its output for an attach. Returns the release. */
  holdOutputForAttach(id: string): () => void {
    return this.gate.hold(id);
  }

  /** Resolves at the container's next exit (or failed start). */
  nextExit(ref: string): Promise<WaitResult> {
    return this.waiters.waitFor(this.store.get(ref).id, "exit");
  }

  /** Resolves when the container is no longer running (at once if it is not). */
  untilStopped(ref: string): Promise<unknown> {
    const c = this.store.get(ref);
    if (c.state.status !== "running" && !this.starting.has(c.id)) return Promise.resolve();
    return this.waiters.waitFor(c.id, "exit");
  }

  /**
   * POST /containers/{id}/wait. `not-running` answers at once for a stopped container;
   * `next-exit` waits for the next exit; `removed` for the removal (with the last exit code).
   */
  wait(ref: string, condition: WaitCondition = "not-running"): Promise<WaitResult> {
    const c = this.store.get(ref);
    if (condition === "removed") return this.waiters.waitFor(c.id, "removed");
    if (condition === "not-running" && c.state.status !== "running" && c.state.status !== "restarting" && !this.starting.has(c.id)) {
      return Promise.resolve({ StatusCode: c.state.exitCode, Error: null });
    }
    return this.waiters.waitFor(c.id, "exit");
  }

  /**
   * Sends a signal (number) through the shim, saying who asked and why in the log; if no shim
   * listens, the exit is collected now.
   */
  private signal(c: ContainerRecord, sig: number, why: string): void {
    this.signalled.add(c.id);
    this.log(`container ${c.id.slice(0, 12)} (${c.name.slice(1)}): sending signal ${sig}: ${why}`);
    // A frozen container cannot die: thaw it for a KILL (as dockerd does for kill and rm -f).
    if (sig === 9 && c.state.paused) {
      const cg = cgroupOf(readShimState(this.store.paths(c.id).stateDir));
      if (cg) thaw(cg);
      c.state.paused = false;
    }
    if (!shimSignal(this.store.paths(c.id).stateDir, sig)) this.checkExit(c.id, true);
  }

  /**
   * POST /containers/{id}/stop: the stop signal (TERM unless the image says otherwise), then
   * KILL after `timeoutS` (the container's StopTimeout, else 10 s; -1 waits forever).
   */
  async stop(ref: string, timeoutS?: number, origin = "a stop"): Promise<void> {
    const c = this.store.get(ref);
    if (c.state.status === "restarting" && this.cancelRestart(c)) {
      c.manualStop = true;
      c.state.status = "exited";
      await this.store.save(c);
      return;
    }
    await this.starting.get(c.id);
    if (c.state.status !== "running") throw new NotModifiedError();
    c.manualStop = true;
    await this.store.save(c);
    const exit = this.waiters.waitFor(c.id, "exit");
    const grace = timeoutS ?? c.config.StopTimeout ?? STOP_GRACE_DEFAULT_S;
    this.signal(c, signalNumber(c.config.StopSignal ?? "TERM"), `stop requested by ${origin}`);
    if (grace < 0) await exit;
    else if (!(await within(exit, grace * 1000))) {
      this.deps.events.emit("container", "kill", c.id, this.attributes(c, { signal: "9" }));
      this.signal(c, 9, `still running ${grace} s after the stop signal (stop requested by ${origin})`);
      if (!(await within(exit, KILL_WAIT_MS))) throw new HttpError(500, `container ${c.id} did not exit after SIGKILL`);
    }
    this.deps.events.emit("container", "stop", c.id, this.attributes(c));
  }

  /** POST /containers/{id}/kill. 409 when not running. KILL (and the stop signal) count as a manual stop. */
  async kill(ref: string, signal = "KILL", origin = "a kill"): Promise<void> {
    const c = this.store.get(ref);
    const sig = signalNumber(signal);
    await this.starting.get(c.id);
    if (c.state.status !== "running") throw new ConflictError(`Cannot kill container: ${ref}: Container ${c.id} is not running`);
    const stopSig = signalNumber(c.config.StopSignal ?? "TERM");
    if (sig === 9 || sig === stopSig) {
      c.manualStop = true;
      await this.store.save(c);
    }
    const exit = this.waiters.waitFor(c.id, "exit");
    this.deps.events.emit("container", "kill", c.id, this.attributes(c, { signal: String(sig) }));
    this.signal(c, sig, `kill requested by ${origin}`);
    // Like dockerd, answer a KILL once the container is gone, so `kill; ps` agree.
    if (sig === 9) await within(exit, KILL_WAIT_MS);
  }

  /** POST /containers/{id}/restart. */
  async restart(ref: string, timeoutS?: number, origin = "a restart"): Promise<void> {
    try {
      await this.stop(ref, timeoutS, origin);
    } catch (err) {
      if (!(err instanceof NotModifiedError)) throw err;
    }
    const c = this.store.get(ref);
    if (c.state.status === "running" || this.starting.has(c.id)) return;
    c.manualStop = false;
    await this.launch(c, false);
    this.deps.events.emit("container", "restart", c.id, this.attributes(c));
  }

  /** DELETE /containers/{id}. Running: 409 unless force (then KILL first). `volumes` drops anonymous volumes. */
  async remove(ref: string, opts: { force?: boolean; volumes?: boolean; origin?: string } = {}): Promise<void> {
    const c = this.store.get(ref);
    if (c.state.status === "removing") return;
    await this.starting.get(c.id);
    if (c.state.status === "running" || c.state.status === "restarting") {
      if (!opts.force) {
        throw new ConflictError(
          `You cannot remove a ${c.state.status} container ${c.id}. Stop the container before attempting removal or force remove`,
        );
      }
      if (!this.cancelRestart(c) && c.state.status === "running") {
        c.manualStop = true;
        const exit = this.waiters.waitFor(c.id, "exit");
        this.signal(c, 9, `forced removal requested by ${opts.origin ?? "a removal"}`);
        if (!(await within(exit, KILL_WAIT_MS))) throw new HttpError(500, `could not kill running container ${c.id}, cannot remove`);
      }
    }
    // An exit being processed (network detach, events) finishes before the files go.
    while (this.exiting.has(c.id) && this.store.find(c.id) === c) await new Promise((r) => setTimeout(r, 10));
    if (this.store.find(c.id) !== c) return; // removed meanwhile (AutoRemove)
    c.state.status = "removing";
    await this.store.save(c);
    await this.store.delete(c);
    await this.files.remove(c.id);
    if (opts.volumes) {
      for (const m of c.mounts) {
        if (m.type !== "volume" || !m.anonymous || this.store.volumeUsers(m.name).length) continue;
        if (await this.deps.volumes.remove(m.name, [], true).catch(() => false))
          this.deps.events.emit("volume", "destroy", m.name, { driver: "local" });
      }
    }
    this.deps.events.emit("container", "destroy", c.id, this.attributes(c));
    this.waiters.settle(c.id, "exit", { StatusCode: c.state.exitCode, Error: null });
    this.waiters.settle(c.id, "removed", { StatusCode: c.state.exitCode, Error: null });
  }
}
