// End-to-end behaviour of the pure core: a simulated cluster runs reconcile → schedule → agents
// in a loop, with the clock advancing, and the invariants are checked at every step.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  advance,
  affectsTasks,
  isLive,
  reconcileService,
  schedule,
  startUpdate,
  type NodeInfo,
  type ServiceSpec,
  type Task,
  type UpdateConfig,
  type UpdateState,
} from "../src";
import { makeNodes, NOW, replicated } from "./fixtures";

class Sim {
  now = NOW;
  tasks: Task[] = [];
  update?: UpdateState;
  version = 1;
  previous?: ServiceSpec;
  readonly specs = new Map<number, ServiceSpec>();
  private ids = 0;

  constructor(
    public spec: ServiceSpec,
    public nodes: NodeInfo[],
  ) {
    this.specs.set(1, spec);
  }

  /** A user edit: bumps the task version only when tasks are affected, as the API will. */
  edit(next: ServiceSpec): void {
    if (affectsTasks(this.spec, next)) {
      this.previous = this.spec;
      this.version++;
      this.specs.set(this.version, next);
    }
    this.spec = next;
  }

  /** One reconcile + schedule + agent round; returns the post-reconcile view for checks. */
  step(): Task[] {
    const r = reconcileService({
      serviceId: "svc",
      spec: this.spec,
      version: this.version,
      ...(this.previous ? { previousSpec: this.previous } : {}),
      tasks: this.tasks,
      nodes: this.nodes,
      ...(this.update ? { update: this.update } : {}),
      now: this.now,
      newId: () => `t${this.ids++}`,
    });
    this.tasks = [...r.tasks];
    this.update = r.update;
    const view = this.tasks;
    if (r.rollbackTo) this.rollback(r.rollbackTo);

    const pending = this.tasks.filter((t) => isLive(t) && t.nodeId === undefined);
    const placed = schedule(pending, this.nodes, this.tasks, { svc: this.spec }, { now: this.now });
    const where = new Map(placed.assignments.map((a) => [a.taskId, a.nodeId]));
    const nodes = new Map(this.nodes.map((n) => [n.id, n]));
    this.tasks = this.tasks.map((t) => {
      const nodeId = where.get(t.id);
      if (nodeId) return advance({ ...t, nodeId }, "ASSIGNED", this.now);
      if (t.state === "NEW") return advance(t, "PENDING", this.now);
      if (t.nodeId === undefined || nodes.get(t.nodeId)?.status !== "ready") return t;
      // The agent: stops what it is told to, starts the rest; "bad" images crash on start.
      if (t.desiredState === "shutdown") return advance(t, "SHUTDOWN", this.now, { exitCode: 143 });
      if (t.state === "ASSIGNED") return advance(t, "STARTING", this.now);
      if (t.state === "STARTING") {
        const image = this.specs.get(t.specVersion)?.image;
        return image === "bad" ? advance(t, "FAILED", this.now, { exitCode: 1 }) : advance(t, "RUNNING", this.now);
      }
      return t;
    });
    this.now += 1_000;
    return view;
  }

  private rollback(to: ServiceSpec): void {
    const equivalent = [...this.specs].filter(([, s]) => !affectsTasks(s, to)).map(([v]) => v);
    this.previous = this.spec;
    this.spec = to;
    this.version++;
    this.specs.set(this.version, to);
    this.update = startUpdate(this.version, this.now, { rollback: true, equivalentVersions: equivalent });
  }

  live(): Task[] {
    return this.tasks.filter(isLive);
  }

  runUntil(done: () => boolean, check: (view: Task[]) => void = () => {}, maxSteps = 300): void {
    for (let i = 0; i < maxSteps && !done(); i++) check(this.step());
    expect(done(), "converged").toBe(true);
  }
}

function liveBySlot(tasks: readonly Task[]): Map<number, Task[]> {
  const m = new Map<number, Task[]>();
  for (const t of tasks) if (isLive(t)) m.set(t.slot as number, [...(m.get(t.slot as number) ?? []), t]);
  return m;
}

function checkSafety(sim: Sim, view: readonly Task[], replicas: number, order: UpdateConfig["order"]): void {
  const bySlot = liveBySlot(view);
  expect(bySlot.size).toBeLessThanOrEqual(replicas);
  for (const [slot, live] of bySlot) {
    if (order === "stop-first") expect(live.length, `slot ${slot}`).toBe(1);
    else expect(live.length, `slot ${slot}`).toBeLessThanOrEqual(2);
  }
  const nodes = new Map(sim.nodes.map((n) => [n.id, n]));
  for (const t of view) {
    if (!isLive(t) || !t.nodeId) continue;
    expect(nodes.get(t.nodeId)?.status).not.toBe("down");
    expect(nodes.get(t.nodeId)?.availability).not.toBe("drain");
  }
}

const allRunning = (sim: Sim, replicas: number) => (): boolean => {
  const live = sim.live();
  return live.length === replicas && live.every((t) => t.state === "RUNNING" && t.specVersion === sim.version);
};

const updateConfigArb: fc.Arbitrary<UpdateConfig> = fc.record({
  parallelism: fc.integer({ min: 0, max: 3 }),
  delayMs: fc.constantFrom(0, 2_000),
  monitorMs: fc.constantFrom(0, 3_000),
  failureAction: fc.constantFrom("pause", "rollback"),
  maxFailureRatio: fc.constant(0),
  order: fc.constantFrom("stop-first", "start-first"),
});

describe("reconcile loop", () => {
  it("rolls an update through, never exceeding parallelism, and completes", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 6 }), fc.integer({ min: 2, max: 5 }), updateConfigArb, (replicas, nodeCount, updateConfig) => {
        const spec = replicated(replicas, { image: "app:1", updateConfig, restartPolicy: { delayMs: 0 } });
        const sim = new Sim(spec, makeNodes(nodeCount));
        sim.runUntil(allRunning(sim, replicas));
        sim.edit({ ...spec, image: "app:2" });
        sim.runUntil(
          () => sim.update?.status === "completed" && allRunning(sim, replicas)(),
          (view) => {
            checkSafety(sim, view, replicas, updateConfig.order);
            const inFlight = [...liveBySlot(view).values()].filter((l) =>
              l.some((t) => t.specVersion === 2 && t.state !== "RUNNING"),
            ).length;
            if (updateConfig.parallelism > 0) expect(inFlight).toBeLessThanOrEqual(updateConfig.parallelism);
          },
        );
        expect(sim.live().every((t) => sim.specs.get(t.specVersion)?.image === "app:2")).toBe(true);
      }),
      { numRuns: 60 },
    );
  });

  it("scaling does not roll the tasks", () => {
    const sim = new Sim(replicated(2, { restartPolicy: { delayMs: 0 } }), makeNodes(3));
    sim.runUntil(allRunning(sim, 2));
    const before = sim.live().map((t) => t.id);
    sim.edit({ ...sim.spec, mode: { kind: "replicated", replicas: 4 } });
    sim.runUntil(allRunning(sim, 4));
    expect(sim.live().map((t) => t.id)).toEqual(expect.arrayContaining(before));
    expect(sim.update).toBeUndefined();
  });

  it("a failing update rolls back by itself and leaves the untouched tasks alone", () => {
    const spec = replicated(4, {
      image: "app:1",
      restartPolicy: { delayMs: 0 },
      updateConfig: { parallelism: 1, failureAction: "rollback", monitorMs: 5_000 },
    });
    const sim = new Sim(spec, makeNodes(3));
    sim.runUntil(allRunning(sim, 4));
    const original = new Set(sim.live().map((t) => t.id));
    sim.edit({ ...spec, image: "bad" });
    sim.runUntil(
      () => sim.update?.status === "rollback-completed" && sim.live().length === 4 && sim.live().every((t) => t.state === "RUNNING"),
      (view) => checkSafety(sim, view, 4, "stop-first"),
    );
    expect(sim.spec.image).toBe("app:1");
    const kept = sim.live().filter((t) => original.has(t.id));
    expect(kept.length).toBe(3);
  });

  it("a failing update with failure action pause stops after the first batch", () => {
    const spec = replicated(3, { image: "app:1", restartPolicy: { delayMs: 0 }, updateConfig: { parallelism: 1 } });
    const sim = new Sim(spec, makeNodes(3));
    sim.runUntil(allRunning(sim, 3));
    sim.edit({ ...spec, image: "bad" });
    sim.runUntil(
      () => sim.update?.status === "paused",
      (view) => checkSafety(sim, view, 3, "stop-first"),
    );
    for (let i = 0; i < 10; i++) sim.step();
    const byVersion = sim.live().filter((t) => t.specVersion === 1 && t.state === "RUNNING");
    expect(byVersion.length).toBe(2);
    expect(sim.update?.message).toMatch(/^update paused: 1 of 3 tasks failed/);
  });

  it("survives node failures, drains and scaling, and converges once the cluster is calm", () => {
    const event = fc.oneof(
      fc.record({ kind: fc.constant("down" as const), node: fc.nat(4) }),
      fc.record({ kind: fc.constant("drain" as const), node: fc.nat(4) }),
      fc.record({ kind: fc.constant("heal" as const), node: fc.nat(4) }),
      fc.record({ kind: fc.constant("scale" as const), replicas: fc.integer({ min: 0, max: 8 }) }),
      fc.record({ kind: fc.constant("wait" as const) }),
    );
    fc.assert(
      fc.property(fc.array(event, { maxLength: 25 }), (events) => {
        const sim = new Sim(replicated(3, { restartPolicy: { delayMs: 0 } }), makeNodes(5));
        let replicas = 3;
        for (const e of events) {
          if (e.kind === "scale") {
            replicas = e.replicas;
            sim.edit({ ...sim.spec, mode: { kind: "replicated", replicas } });
          } else if (e.kind !== "wait") {
            sim.nodes = sim.nodes.map((n, i) =>
              i !== e.node
                ? n
                : e.kind === "down"
                  ? { ...n, status: "down" }
                  : e.kind === "drain"
                    ? { ...n, availability: "drain" }
                    : { ...n, status: "ready", availability: "active" },
            );
          }
          checkSafety(sim, sim.step(), replicas, "stop-first");
        }
        sim.nodes = sim.nodes.map((n) => ({ ...n, status: "ready", availability: "active" }));
        sim.runUntil(allRunning(sim, replicas), (view) => checkSafety(sim, view, replicas, "stop-first"), 50);
      }),
      { numRuns: 150 },
    );
  });
});
