// Safety properties of the orchestrator over arbitrary (often nonsensical) observed worlds: the
// plan, once applied, must leave a world that is safe, and a second pass must find nothing to do.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  applyPlan,
  isLive,
  matchesConstraints,
  orchestrate,
  parseConstraints,
  TASK_STATES,
  type NodeInfo,
  type RestartPolicy,
  type ServiceSpec,
  type Task,
} from "../src";
import { makeNode, makeSpec, NOW } from "./fixtures";

interface World {
  readonly spec: ServiceSpec;
  readonly version: number;
  readonly nodes: NodeInfo[];
  readonly tasks: Task[];
}

const restartArb: fc.Arbitrary<RestartPolicy> = fc.record({
  condition: fc.constantFrom("none", "on-failure", "any"),
  delayMs: fc.constantFrom(0, 0, 1_000, 60_000),
  maxAttempts: fc.constantFrom(0, 0, 1, 3),
  windowMs: fc.constantFrom(0, 10_000),
});

const worldArb = (opts: { restart?: fc.Arbitrary<RestartPolicy>; global?: boolean } = {}): fc.Arbitrary<World> =>
  fc
    .record({
      global: opts.global === undefined ? fc.boolean() : fc.constant(opts.global),
      replicas: fc.integer({ min: 0, max: 8 }),
      restart: opts.restart ?? restartArb,
      constrained: fc.boolean(),
      version: fc.integer({ min: 1, max: 3 }),
      nodes: fc.array(
        fc.record({
          status: fc.constantFrom("ready", "ready", "down", "unknown"),
          availability: fc.constantFrom("active", "active", "pause", "drain"),
          zone: fc.constantFrom("a", "b"),
        }),
        { maxLength: 6 },
      ),
      tasks: fc.array(
        fc.record({
          service: fc.constantFrom("svc", "svc", "svc", "other"),
          slot: fc.option(fc.integer({ min: 1, max: 10 }), { nil: undefined, freq: 3 }),
          node: fc.integer({ min: 0, max: 7 }),
          assigned: fc.boolean(),
          state: fc.constantFrom(...TASK_STATES),
          desired: fc.constantFrom("running", "running", "shutdown"),
          version: fc.integer({ min: 1, max: 3 }),
          age: fc.integer({ min: 0, max: 120_000 }),
        }),
        { maxLength: 25 },
      ),
    })
    .map((r): World => {
      const spec = makeSpec({
        mode: r.global ? { kind: "global" } : { kind: "replicated", replicas: r.replicas },
        restartPolicy: r.restart,
        placement: { constraints: r.constrained ? ["node.labels.zone==a"] : [] },
      });
      const nodes = r.nodes.map((n, i) =>
        makeNode(`n${i}`, {
          status: n.status as NodeInfo["status"],
          availability: n.availability as NodeInfo["availability"],
          labels: { zone: n.zone },
        }),
      );
      const tasks = r.tasks.map((t, i): Task => {
        // Global tasks are bound to a node from birth; in replicated mode they may be unplaced.
        const nodeId = r.global || t.assigned ? `n${t.node}` : undefined;
        return {
          id: `t${i}`,
          serviceId: t.service,
          ...(r.global ? {} : { slot: t.slot ?? 1 }),
          ...(nodeId ? { nodeId } : {}),
          specVersion: t.version,
          state: t.state,
          desiredState: t.desired as Task["desiredState"],
          createdAt: NOW - t.age - 1_000,
          updatedAt: NOW - t.age,
          finishedAt: NOW - t.age,
        };
      });
      return { spec, version: r.version, nodes, tasks };
    });

function run(w: World, tasks = w.tasks) {
  const plan = orchestrate(w.spec, w.version, tasks, w.nodes, { now: NOW, serviceId: "svc" });
  let n = 0;
  const after = applyPlan(tasks, plan, { now: NOW, newId: () => `new${n++}` });
  return { plan, after };
}

const identityOf = (t: Task): string => (t.slot !== undefined ? `slot ${t.slot}` : `node ${t.nodeId}`);

/** Live tasks of the service per slot or node. */
function liveByIdentity(tasks: readonly Task[]): Map<string, Task[]> {
  const m = new Map<string, Task[]>();
  for (const t of tasks) {
    if (t.serviceId !== "svc" || !isLive(t)) continue;
    const k = identityOf(t);
    m.set(k, [...(m.get(k) ?? []), t]);
  }
  return m;
}

/** One live task per identity, or an old one next to a current one that is not running yet. */
function expectOneLivePerIdentity(w: World, after: readonly Task[]): void {
  for (const [k, live] of liveByIdentity(after)) {
    if (live.length === 1) continue;
    expect(live.length, k).toBe(2);
    const current = live.filter((t) => t.specVersion === w.version);
    expect(current.length, `${k}: one current task in an overlap`).toBe(1);
    expect(current[0].state, `${k}: the current task of an overlap is not running yet`).not.toBe("RUNNING");
  }
}

describe("orchestrate: safety", () => {
  it("never touches another service's tasks", () => {
    fc.assert(
      fc.property(worldArb(), (w) => {
        const { plan } = run(w);
        const owner = new Map(w.tasks.map((t) => [t.id, t.serviceId]));
        for (const s of plan.stop) expect(owner.get(s.taskId)).toBe("svc");
        for (const c of plan.create) expect(c.serviceId).toBe("svc");
      }),
      { numRuns: 500 },
    );
  });

  it("never leaves two live tasks in one slot or node, beyond a start-first overlap", () => {
    fc.assert(
      fc.property(worldArb(), (w) => expectOneLivePerIdentity(w, run(w).after)),
      { numRuns: 500 },
    );
  });

  it("never leaves more live replicas than asked for", () => {
    fc.assert(
      fc.property(worldArb({ global: false }), (w) => {
        const replicas = w.spec.mode.kind === "replicated" ? w.spec.mode.replicas : 0;
        expect(liveByIdentity(run(w).after).size).toBeLessThanOrEqual(replicas);
      }),
      { numRuns: 500 },
    );
  });

  it("keeps exactly the replicas asked for when restarts are immediate and unlimited", () => {
    const always = fc.constant<RestartPolicy>({ condition: "any", delayMs: 0, maxAttempts: 0, windowMs: 0 });
    fc.assert(
      fc.property(worldArb({ restart: always, global: false }), (w) => {
        const replicas = w.spec.mode.kind === "replicated" ? w.spec.mode.replicas : 0;
        expect(liveByIdentity(run(w).after).size).toBe(replicas);
      }),
      { numRuns: 500 },
    );
  });

  it("leaves no live task on a down, drained or vanished node", () => {
    fc.assert(
      fc.property(worldArb(), (w) => {
        const nodes = new Map(w.nodes.map((n) => [n.id, n]));
        for (const t of run(w).after) {
          if (t.serviceId !== "svc" || !isLive(t) || t.nodeId === undefined) continue;
          const n = nodes.get(t.nodeId);
          expect(n, `${t.id} on a vanished node`).toBeDefined();
          expect(n?.status).not.toBe("down");
          expect(n?.availability).not.toBe("drain");
        }
      }),
      { numRuns: 500 },
    );
  });

  it("global: covers every ready, active, matching node and no other new one", () => {
    const always = fc.constant<RestartPolicy>({ condition: "any", delayMs: 0, maxAttempts: 0, windowMs: 0 });
    fc.assert(
      fc.property(worldArb({ restart: always, global: true }), (w) => {
        const { plan, after } = run(w);
        const constraints = parseConstraints(w.spec.placement.constraints);
        const live = liveByIdentity(after);
        for (const n of w.nodes) {
          const eligible = n.status === "ready" && n.availability === "active" && matchesConstraints(n, constraints);
          if (eligible) expect(live.has(`node ${n.id}`), n.id).toBe(true);
        }
        const byId = new Map(w.nodes.map((n) => [n.id, n]));
        for (const c of plan.create) {
          const n = byId.get(c.nodeId as string) as NodeInfo;
          expect(n.status === "ready" && n.availability === "active" && matchesConstraints(n, constraints)).toBe(true);
        }
      }),
      { numRuns: 500 },
    );
  });

  it("reaches a fixed point: a second pass over the applied plan creates and stops nothing", () => {
    fc.assert(
      fc.property(worldArb(), (w) => {
        const first = run(w);
        const second = run(w, first.after);
        expect(second.plan.create).toEqual([]);
        expect(second.plan.stop).toEqual([]);
        expect(second.plan.followUps).toEqual(first.plan.followUps);
      }),
      { numRuns: 500 },
    );
  });

  it("is deterministic and leaves its inputs alone", () => {
    fc.assert(
      fc.property(worldArb(), (w) => {
        const snapshot = JSON.stringify(w);
        expect(run(w).plan).toEqual(run(w).plan);
        expect(JSON.stringify(w)).toBe(snapshot);
      }),
      { numRuns: 100 },
    );
  });
});
