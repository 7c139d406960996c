// bench:control-plane's side of sim-fleet.ts: the simulated agents split into ranges, each
// range in a process of its own, asked over IPC.
import { fork, type ChildProcess } from "node:child_process";
import { join } from "node:path";
import { repoRoot } from "../../../test/support/stack";

export interface FleetReport {
  beats: number[];
  serverBeats: number[];
  /** Beats of a second or more: sent when (epoch ms), how long, the API's share. */
  slowBeats: { sentAt: number; ms: number; serverMs?: number }[];
  failed: number;
  containers: number;
  intervalMs: number;
  loopP99Ms: number;
  loopMaxMs: number;
}

type Op = "register" | "tokens" | "mark" | "report" | "stop";

class Fleet {
  private nextId = 0;
  private readonly waiting = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();

  constructor(private readonly child: ChildProcess) {
    child.on("message", (m: { id: number; result?: unknown; error?: string }) => {
      const w = this.waiting.get(m.id);
      this.waiting.delete(m.id);
      if (m.error !== undefined) w?.reject(new Error(`sim-fleet: ${m.error}`));
      else w?.resolve(m.result);
    });
    child.on("exit", (code, signal) => {
      for (const w of this.waiting.values()) w.reject(new Error(`sim-fleet exited (${signal ?? code}) with a request open`));
      this.waiting.clear();
    });
  }

  call<T>(op: Op, extra: Record<string, unknown> = {}): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const id = this.nextId++;
      this.waiting.set(id, { resolve: resolve as (v: unknown) => void, reject });
      this.child.send({ id, op, ...extra });
    });
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  get exited(): boolean {
    return this.child.exitCode !== null || this.child.signalCode !== null;
  }
}

/** Agents `bench-1` … `bench-<nodes>` in `processes` processes, started (not yet registered). */
export function startFleets(opts: {
  processes: number;
  nodes: number;
  apiUrl: string;
  token: string;
  heartbeatMs: number;
  registerConcurrency: number;
}): Fleets {
  const per = Math.ceil(opts.nodes / opts.processes);
  const fleets: Fleet[] = [];
  for (let first = 1; first <= opts.nodes; first += per) {
    const last = Math.min(opts.nodes, first + per - 1);
    const child = fork(
      join(repoRoot, "apps/api/bench/sim-fleet.ts"),
      [
        opts.apiUrl,
        opts.token,
        String(opts.heartbeatMs),
        String(first),
        String(last),
        String(Math.max(1, Math.round(opts.registerConcurrency / opts.processes))),
      ],
      { execArgv: ["--import", "tsx"], stdio: ["ignore", "inherit", "inherit", "ipc"] },
    );
    fleets.push(new Fleet(child));
  }
  return new Fleets(fleets);
}

export class Fleets {
  constructor(private readonly fleets: Fleet[]) {}

  /** Every agent's first beat (which registers its node); the hostnames. */
  async register(): Promise<string[]> {
    const parts = await Promise.all(this.fleets.map((f) => f.call<{ hostnames: string[] }>("register")));
    return parts.flatMap((p) => p.hostnames);
  }

  async useTokens(tokens: Record<string, string>): Promise<void> {
    await Promise.all(this.fleets.map((f) => f.call("tokens", { tokens })));
  }

  async mark(): Promise<void> {
    await Promise.all(this.fleets.map((f) => f.call("mark")));
  }

  /** The figures since mark(), over every process (event-loop delays: the worst process's). */
  async report(): Promise<FleetReport> {
    const parts = await Promise.all(this.fleets.map((f) => f.call<FleetReport>("report")));
    return {
      beats: parts.flatMap((p) => p.beats),
      serverBeats: parts.flatMap((p) => p.serverBeats),
      slowBeats: parts.flatMap((p) => p.slowBeats),
      failed: parts.reduce((n, p) => n + p.failed, 0),
      containers: parts.reduce((n, p) => n + p.containers, 0),
      intervalMs: Math.max(...parts.map((p) => p.intervalMs)),
      loopP99Ms: Math.max(...parts.map((p) => p.loopP99Ms)),
      loopMaxMs: Math.max(...parts.map((p) => p.loopMaxMs)),
    };
  }

  /** The agent processes' pids. */
  pids(): (number | undefined)[] {
    return this.fleets.map((f) => f.pid);
  }

  async stop(): Promise<void> {
    await Promise.all(this.fleets.filter((f) => !f.exited).map((f) => f.call("stop").catch(() => undefined)));
  }
}
