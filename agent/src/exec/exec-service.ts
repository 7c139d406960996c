/**
 * Exec instances (`docker exec`): created against a running container, started once (attached
 * over a hijacked connection, or detached), inspected for their exit code. Each runs under its
 * own `flotilla-shim exec` monitor with a state directory inside the container's directory, so
 * it survives an agent restart like the container does; the records themselves live in memory
 * and go with the container (its exit ends them, its removal drops them). Finished ones are
 * also dropped after a while and beyond a bound per container (exec-prune.ts), state dir and all.
 */
import { randomBytes } from "node:crypto";
import * as fs from "node:fs";
import { join } from "node:path";
import type { Duplex } from "node:stream";
import { ConflictError, NotFoundError } from "@flotilla/core";
import { HttpError } from "../engine-errors";
import type { ContainerService } from "../containers/container-service";
import type { ContainerRecord } from "../containers/container-types";
import type { ImageStore } from "../images";
import { frame } from "../containers/logs";
import { resolveUser } from "../containers/rootfs-files";
import { readShimState, ShimRunError, shimRun } from "../containers/shim-client";
import type { EventBus } from "../events/event-bus";
import { connectAttach, resizeTty, writeControl } from "./attach-socket";
import { DEFAULT_DETACH_KEYS, parseDetachKeys } from "./detach-keys";
import { parseExecCreate, shimExecArgs, type ExecCreateBody, type ExecSpec } from "./exec-args";
import { pipeInteractive } from "./interactive";
import { DEFAULT_EXEC_RETENTION, execsToPrune, type ExecRetention } from "./exec-prune";

export class ExecNotFoundError extends NotFoundError {
  constructor(id: string) {
    super("exec", id);
    this.message = `No such exec instance: ${id}`;
  }
}

export interface ExecRecord {
  id: string;
  containerId: string;
  spec: ExecSpec;
  state: "created" | "running" | "exited";
  exitCode: number | null;
  pid: number;
  stateDir: string;
  /** The last window size asked for; applied once the process runs (the CLI may ask earlier). */
  size: [number, number] | null;
  /** When it was seen to end (ms since the epoch), for pruning; null before. */
  endedAt: number | null;
}

export interface ExecServiceDeps {
  containers: ContainerService;
  images: ImageStore;
  events: EventBus;
  shimPath: string;
  retention?: Partial<ExecRetention>;
}

/** The running container an exec may enter, or Docker's 404/409. */
function runningContainer(containers: ContainerService, ref: string): ContainerRecord {
  const c = containers.get(ref);
  if (c.state.status === "restarting") throw new ConflictError(`Container ${c.id} is restarting, wait until the container is running`);
  if (c.state.status !== "running") throw new ConflictError(`Container ${c.id} is not running`);
  if (c.state.paused) throw new ConflictError(`Container ${c.id} is paused, unpause the container before exec`);
  return c;
}

/** The outcome of running an exec to its end with its output collected (health checks). */
export interface ExecResult {
  exitCode: number;
  output: string;
}

export class ExecService {
  private readonly execs = new Map<string, ExecRecord>();
  private readonly unsubscribe: () => void;
  private readonly retention: ExecRetention;
  private readonly sweeper: NodeJS.Timeout;

  constructor(private readonly deps: ExecServiceDeps) {
    this.retention = { ...DEFAULT_EXEC_RETENTION, ...deps.retention };
    // Execs nobody asks about (detached ones) are noticed to end here, then dropped in time.
    this.sweeper = setInterval(() => this.prune(), this.retention.sweepMs).unref();
    // The container's exit ends its execs (the kernel killed them with its pid namespace);
    // its removal takes their records.
    this.unsubscribe = deps.events.subscribe((e) => {
      if (e.Type !== "container") return;
      if (e.Action === "die") for (const x of this.ofContainer(e.Actor.ID)) this.refresh(x, true);
      if (e.Action === "destroy") for (const x of this.ofContainer(e.Actor.ID)) this.execs.delete(x.id);
    });
  }

  close(): void {
    this.unsubscribe();
    clearInterval(this.sweeper);
  }

  /** Drops finished execs past their time or their container's bound, with their state dirs. */
  private prune(): void {
    for (const x of this.execs.values()) this.refresh(x, false);
    for (const id of execsToPrune([...this.execs.values()], Date.now(), this.retention)) {
      const x = this.execs.get(id)!;
      this.execs.delete(id);
      fs.promises.rm(x.stateDir, { recursive: true, force: true }).catch(() => {});
    }
  }

  /** The number of exec records held (running or not), for tests and diagnostics. */
  get size(): number {
    return this.execs.size;
  }

  list(): ExecRecord[] {
    return [...this.execs.values()];
  }

  private ofContainer(id: string): ExecRecord[] {
    return [...this.execs.values()].filter((x) => x.containerId === id);
  }

  /** POST /containers/{id}/exec. */
  create(ref: string, body: ExecCreateBody): { Id: string } {
    const spec = parseExecCreate(body);
    const c = runningContainer(this.deps.containers, ref);
    this.prune();
    const id = randomBytes(32).toString("hex");
    const stateDir = join(this.deps.containers.store.paths(c.id).dir, "exec", id);
    this.execs.set(id, {
      id,
      containerId: c.id,
      spec,
      state: "created",
      exitCode: null,
      pid: 0,
      stateDir,
      size: spec.consoleSize,
      endedAt: null,
    });
    this.deps.events.emit("container", `exec_create: ${spec.cmd.join(" ")}`, c.id, { ...this.deps.containers.attributes(c), execID: id });
    return { Id: id };
  }

  /** Docker's checks before an attached start answers 101: the exec exists, has not run, its container runs. */
  checkStartable(id: string): ExecRecord {
    const x = this.get(id);
    if (x.state !== "created")
      throw new ConflictError(
        x.state === "running" ? `Error: Exec command ${x.id} is already running` : `Error: Exec command ${x.id} has already run`,
      );
    runningContainer(this.deps.containers, x.containerId);
    return x;
  }

  get(id: string): ExecRecord {
    const x = this.execs.get(id);
    if (!x) throw new ExecNotFoundError(id);
    this.refresh(x, false);
    return x;
  }

  /** Reads the exit of a running exec from its shim; `final` when no shim can be left. */
  private refresh(x: ExecRecord, final: boolean): void {
    if (x.state !== "running") return;
    const s = readShimState(x.stateDir);
    if (s?.status === "exited") {
      x.state = "exited";
      x.exitCode = s.exitCode ?? 137;
      x.pid = 0;
      x.endedAt = Date.now();
    } else if (final && s?.status !== "running") {
      x.state = "exited";
      x.exitCode = x.exitCode ?? 137;
      x.endedAt = Date.now();
    }
  }

  /** Starts the shim; the exec is running when this resolves. Throws ShimRunError. */
  private async launch(x: ExecRecord, attachWait: boolean): Promise<void> {
    if (x.state !== "created")
      throw new ConflictError(
        x.state === "running" ? `Error: Exec command ${x.id} is already running` : `Error: Exec command ${x.id} has already run`,
      );
    const c = runningContainer(this.deps.containers, x.containerId);
    const shim = readShimState(this.deps.containers.store.paths(c.id).stateDir);
    if (!shim || shim.status !== "running" || !shim.cgroup) throw new ConflictError(`Container ${c.id} is not running`);
    const image = await this.deps.images.resolve(c.imageId);
    const paths = this.deps.containers.store.paths(c.id);
    const user = await resolveUser(x.spec.user || c.config.User, [paths.upper, ...image.lowerDirs]);
    x.state = "running";
    try {
      await fs.promises.mkdir(x.stateDir, { recursive: true, mode: 0o700 });
      const args = shimExecArgs(c, x.spec, { execId: x.id, stateDir: x.stateDir, pid: shim.pid, cgroup: shim.cgroup, user, attachWait });
      const started = await shimRun(this.deps.shimPath, args, "exec");
      x.pid = started.pid;
      if (x.size) resizeTty(x.stateDir, x.size[0], x.size[1]);
      this.deps.events.emit("container", `exec_start: ${x.spec.cmd.join(" ")}`, c.id, {
        ...this.deps.containers.attributes(c),
        execID: x.id,
      });
    } catch (err) {
      x.state = "exited";
      x.exitCode = err instanceof ShimRunError ? err.exitCode : 126;
      x.endedAt = Date.now();
      throw err;
    }
  }

  /** POST /exec/{id}/start with Detach: runs it and returns. */
  async startDetached(id: string): Promise<void> {
    const x = this.get(id);
    try {
      await this.launch(x, false);
    } catch (err) {
      throw execStartError(err);
    }
  }

  /**
   * POST /exec/{id}/start attached: the client has its 101 already. Output goes to it until the
   * process exits (then the exit code is known to GET /exec/{id}/json), stdin comes from it.
   */
  async startAttached(id: string, client: Duplex): Promise<void> {
    const x = this.get(id);
    try {
      await this.launch(x, true);
    } catch (err) {
      // After the upgrade the stream is all the client reads: the error goes there, as dockerd writes it.
      const msg = `OCI runtime exec failed: exec failed: ${err instanceof Error ? err.message : String(err)}\r\n`;
      client.write(x.spec.tty ? Buffer.from(msg) : frame("stderr", msg));
      client.end();
      return;
    }
    const shim = await connectAttach(x.stateDir, x.spec.attachStdin).catch(() => null);
    if (shim) {
      const keys = parseDetachKeys(x.spec.detachKeys || DEFAULT_DETACH_KEYS);
      const how = await pipeInteractive({ client, shim, stdin: x.spec.attachStdin, detachKeys: keys });
      shim.destroy();
      if (how === "client-gone") return;
    }
    this.refresh(x, false);
    client.end();
  }

  /** Runs a command in the container to its end and collects its output (health checks). */
  async run(containerId: string, cmd: string[], signal: AbortSignal): Promise<ExecResult> {
    const { Id } = this.create(containerId, { Cmd: cmd, AttachStdout: true, AttachStderr: true });
    const x = this.execs.get(Id)!;
    try {
      await this.launch(x, true);
      const shim = await connectAttach(x.stateDir, false);
      const chunks: Buffer[] = [];
      let size = 0;
      // A probe past its timeout is killed; its shim then closes the socket as for any exit.
      const onAbort = () => writeControl(x.stateDir, "9");
      signal.addEventListener("abort", onAbort);
      await new Promise<void>((resolve) => {
        shim.on("data", (b: Buffer) => {
          if (size < 64 * 1024) chunks.push(b);
          size += b.length;
        });
        shim.once("close", () => resolve());
        shim.on("error", () => resolve());
      });
      signal.removeEventListener("abort", onAbort);
      this.refresh(x, false);
      return { exitCode: x.state === "exited" ? (x.exitCode ?? -1) : -1, output: demux(Buffer.concat(chunks)) };
    } finally {
      this.execs.delete(x.id);
      fs.promises.rm(x.stateDir, { recursive: true, force: true }).catch(() => {});
    }
  }

  /** POST /exec/{id}/resize. */
  resize(id: string, rows: number, cols: number): void {
    const x = this.get(id);
    if (x.state === "exited") throw new ConflictError(`Exec ${x.id} is not running`);
    // The CLI resizes right after its start request; the shim may not run yet: keep it for then.
    x.size = [rows, cols];
    if (x.pid > 0) resizeTty(x.stateDir, rows, cols);
  }

  /** GET /exec/{id}/json, in Docker's shape. */
  inspect(id: string) {
    const x = this.get(id);
    return {
      ID: x.id,
      Running: x.state === "running",
      ExitCode: x.exitCode,
      ProcessConfig: { tty: x.spec.tty, entrypoint: x.spec.cmd[0], arguments: x.spec.cmd.slice(1), privileged: false, user: x.spec.user },
      OpenStdin: x.spec.attachStdin,
      OpenStderr: x.spec.attachStderr,
      OpenStdout: x.spec.attachStdout,
      CanRemove: false,
      ContainerID: x.containerId,
      DetachKeys: x.spec.detachKeys,
      Pid: x.pid,
    };
  }
}

/** A start failure in Docker's words, with the status dockerd uses. */
function execStartError(err: unknown): Error {
  if (err instanceof ShimRunError)
    return new HttpError(err.exitCode === 125 ? 500 : 400, `OCI runtime exec failed: exec failed: ${err.message}`);
  return err as Error;
}

/** The payloads of multiplexed frames, concatenated. */
export function demux(buf: Buffer): string {
  const parts: Buffer[] = [];
  let off = 0;
  while (off + 8 <= buf.length) {
    const len = buf.readUInt32BE(off + 4);
    parts.push(buf.subarray(off + 8, off + 8 + len));
    off += 8 + len;
  }
  return Buffer.concat(parts).toString("utf8");
}
