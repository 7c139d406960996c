/**
 * Runs the health checks of running containers: one probe every interval through exec (so a
 * probe joins the container's namespaces and cgroup like `docker exec`), killed at its timeout;
 * the result folded into State.Health (pure rules in health-config.ts), with a
 * `health_status: healthy|unhealthy` event at each change, as dockerd emits.
 */
import type { ContainerService } from "../containers/container-service";
import type { ContainerRecord } from "../containers/container-types";
import type { EventBus } from "../events/event-bus";
import type { ExecService } from "../exec/exec-service";
import { applyProbe, healthPlan, type HealthPlan } from "./health-config";

interface Watch {
  timer: NodeJS.Timeout | null;
  abort: AbortController;
  startedAt: number;
}

export class HealthMonitor {
  private readonly watches = new Map<string, Watch>();
  private readonly unsubscribe: () => void;

  constructor(
    private readonly containers: ContainerService,
    private readonly execs: ExecService,
    private readonly events: EventBus,
    private readonly log: (msg: string) => void = () => {},
  ) {
    this.unsubscribe = events.subscribe((e) => {
      if (e.Type !== "container") return;
      if (e.Action === "start") this.watch(e.Actor.ID);
      else if (e.Action === "die" || e.Action === "destroy") this.unwatch(e.Actor.ID);
    });
    // Containers re-adopted at agent start keep being checked.
    for (const c of containers.all()) if (c.state.status === "running") this.watch(c.id);
  }

  close(): void {
    this.unsubscribe();
    for (const id of [...this.watches.keys()]) this.unwatch(id);
  }

  private watch(id: string): void {
    const c = this.containers.store.find(id);
    const plan = c ? healthPlan(c.config.Healthcheck) : null;
    if (!c || !plan) return;
    this.unwatch(id);
    c.state.health = c.state.health ?? { Status: "starting", FailingStreak: 0, Log: [] };
    const w: Watch = { timer: null, abort: new AbortController(), startedAt: Date.parse(c.state.startedAt ?? "") || Date.now() };
    this.watches.set(id, w);
    this.schedule(c, plan, w);
  }

  private unwatch(id: string): void {
    const w = this.watches.get(id);
    if (!w) return;
    if (w.timer) clearTimeout(w.timer);
    w.abort.abort();
    this.watches.delete(id);
  }

  private schedule(c: ContainerRecord, plan: HealthPlan, w: Watch): void {
    w.timer = setTimeout(() => {
      w.timer = null;
      void this.probe(c, plan, w).finally(() => {
        if (this.watches.get(c.id) === w && !w.abort.signal.aborted) this.schedule(c, plan, w);
      });
    }, plan.intervalMs);
  }

  private async probe(c: ContainerRecord, plan: HealthPlan, w: Watch): Promise<void> {
    if (c.state.status !== "running" || c.state.paused) return;
    const start = new Date().toISOString();
    const timeout = new AbortController();
    const onStop = () => timeout.abort();
    w.abort.signal.addEventListener("abort", onStop);
    const timer = setTimeout(() => timeout.abort(), plan.timeoutMs);
    let exitCode: number;
    let output: string;
    try {
      const r = await this.execs.run(c.id, plan.cmd, timeout.signal);
      if (timeout.signal.aborted) {
        exitCode = -1;
        output = `Health check exceeded timeout (${plan.timeoutMs / 1000}s)`;
      } else {
        exitCode = r.exitCode;
        output = r.output;
      }
    } catch (err) {
      exitCode = -1;
      output = err instanceof Error ? err.message : String(err);
    } finally {
      clearTimeout(timer);
      w.abort.signal.removeEventListener("abort", onStop);
    }
    if (w.abort.signal.aborted || this.containers.store.find(c.id) !== c || c.state.status !== "running") return;
    const prev = c.state.health ?? { Status: "starting" as const, FailingStreak: 0, Log: [] };
    const inStart = Date.now() - w.startedAt < plan.startPeriodMs;
    const next = applyProbe(prev, { exitCode, output, start, end: new Date().toISOString() }, plan, inStart);
    c.state.health = next;
    if (next.Status !== prev.Status) {
      this.events.emit("container", `health_status: ${next.Status}`, c.id, this.containers.attributes(c));
      await this.containers.store.save(c).catch((e) => this.log(`health ${c.id}: ${(e as Error).message}`));
    }
  }
}
