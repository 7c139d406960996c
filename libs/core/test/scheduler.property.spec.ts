// Safety properties of the scheduler, checked against a test-side oracle written independently
// of the library's filters.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { countLive, isLive, liveCountsWithout, schedule, type NodeInfo, type SchedulableTask, type ServiceSpec, type Task } from "../src";
import { CPU, GiB, makeTask, NOW, replicated } from "./fixtures";

const CONSTRAINTS = ["node.labels.zone==a", "node.labels.zone!=b", "node.role==worker", "node.role==manager", "node.hostname!=h1"] as const;

/** The oracle's reading of a constraint: deliberately a lookup table, not a parser. */
function holds(c: (typeof CONSTRAINTS)[number], n: NodeInfo): boolean {
  switch (c) {
    case "node.labels.zone==a":
      return n.labels.zone === "a";
    case "node.labels.zone!=b":
      return n.labels.zone !== "b";
    case "node.role==worker":
      return n.role === "worker";
    case "node.role==manager":
      return n.role === "manager";
    case "node.hostname!=h1":
      return n.hostname !== "h1";
  }
}

const nodeArb = (i: number): fc.Arbitrary<NodeInfo> =>
  fc
    .record({
      status: fc.constantFrom("ready", "ready", "ready", "down", "unknown"),
      availability: fc.constantFrom("active", "active", "active", "pause", "drain"),
      role: fc.constantFrom("worker", "worker", "manager"),
      zone: fc.constantFrom("a", "b", "c", undefined),
      cpus: fc.integer({ min: 1, max: 8 }),
      gib: fc.integer({ min: 1, max: 8 }),
    })
    .map((r): NodeInfo => ({
      id: `n${i}`,
      hostname: `h${i}`,
      role: r.role as NodeInfo["role"],
      status: r.status as NodeInfo["status"],
      availability: r.availability as NodeInfo["availability"],
      labels: r.zone === undefined ? {} : { zone: r.zone },
      resources: { nanoCpus: r.cpus * CPU, memoryBytes: r.gib * GiB },
    }));

const specArb = (name: string): fc.Arbitrary<ServiceSpec> =>
  fc
    .record({
      cpuQuarters: fc.constantFrom(0, 0, 1, 2, 4, 8),
      memQuarters: fc.constantFrom(0, 0, 1, 2, 4, 8),
      constraints: fc.subarray([...CONSTRAINTS], { maxLength: 2 }),
      port: fc.option(fc.constantFrom(80, 443), { nil: undefined }),
      udp: fc.boolean(),
      maxPerNode: fc.constantFrom(0, 0, 1, 2),
      spread: fc.boolean(),
    })
    .map((r) =>
      replicated(1, {
        name,
        resources: { reservations: { nanoCpus: (r.cpuQuarters * CPU) / 4, memoryBytes: (r.memQuarters * GiB) / 4 } },
        ports: r.port === undefined ? [] : [{ published: r.port, target: 8080, protocol: r.udp ? "udp" : "tcp", mode: "host" }],
        placement: {
          constraints: r.constraints,
          preferences: r.spread ? [{ spread: "node.labels.zone" }] : [],
          maxReplicasPerNode: r.maxPerNode,
        },
      }),
    );

interface World {
  readonly nodes: NodeInfo[];
  readonly specs: Record<string, ServiceSpec>;
  readonly existing: Task[];
  readonly pending: SchedulableTask[];
}

const worldArb = (maxServices: number, maxNodes = 10): fc.Arbitrary<World> =>
  fc
    .record({
      nodeCount: fc.integer({ min: 0, max: maxNodes }),
      serviceCount: fc.integer({ min: 1, max: maxServices }),
    })
    .chain(({ nodeCount, serviceCount }) => {
      const services = Array.from({ length: serviceCount }, (_, i) => `s${i}`);
      return fc
        .record({
          nodes: fc.tuple(...Array.from({ length: nodeCount }, (_, i) => nodeArb(i + 1))),
          specs: fc.tuple(...services.map(specArb)),
          existing: fc.array(
            fc.record({
              service: fc.constantFrom(...services),
              node: fc.integer({ min: 1, max: Math.max(1, nodeCount) }),
              state: fc.constantFrom("RUNNING", "RUNNING", "STARTING", "FAILED", "SHUTDOWN"),
              desired: fc.constantFrom("running", "running", "shutdown"),
            }),
            { maxLength: 15 },
          ),
          pending: fc.array(fc.constantFrom(...services), { maxLength: 30 }),
        })
        .map((r): World => ({
          nodes: r.nodes as NodeInfo[],
          specs: Object.fromEntries(services.map((s, i) => [s, r.specs[i]])),
          existing: r.existing.map((e, i) =>
            makeTask(`e${i}`, {
              serviceId: e.service,
              nodeId: `n${e.node}`,
              state: e.state as Task["state"],
              desiredState: e.desired as Task["desiredState"],
              finishedAt: NOW - 1,
            }),
          ),
          pending: r.pending.map((s, i) => ({ id: `p${i}`, serviceId: s })),
        }));
    });

interface Usage {
  cpu: number;
  mem: number;
  ports: number[];
  perService: Map<string, number>;
}

/** Usage per node after the assignments, from live existing tasks plus the new ones. */
function usageAfter(w: World, assigned: readonly { taskId: string; nodeId: string }[]): Map<string, Usage> {
  const u = new Map<string, Usage>(w.nodes.map((n) => [n.id, { cpu: 0, mem: 0, ports: [], perService: new Map() }]));
  const add = (serviceId: string, nodeId: string): void => {
    const x = u.get(nodeId);
    if (!x) return;
    const s = w.specs[serviceId];
    x.cpu += s.resources.reservations.nanoCpus;
    x.mem += s.resources.reservations.memoryBytes;
    for (const p of s.ports) x.ports.push(p.protocol === "udp" ? -p.published : p.published);
    x.perService.set(serviceId, (x.perService.get(serviceId) ?? 0) + 1);
  };
  for (const t of w.existing) if (isLive(t) && t.nodeId) add(t.serviceId, t.nodeId);
  const svc = new Map(w.pending.map((p) => [p.id, p.serviceId]));
  for (const a of assigned) add(svc.get(a.taskId) as string, a.nodeId);
  return u;
}

/** The oracle: why `node` cannot take one more task of `serviceId`, in pipeline order. */
function oracle(w: World, serviceId: string, node: NodeInfo, usage: Usage): string | undefined {
  const s = w.specs[serviceId];
  if (node.status !== "ready" || node.availability !== "active") return "unavailable";
  if (!s.placement.constraints.every((c) => holds(c as (typeof CONSTRAINTS)[number], node))) return "constraints";
  const r = s.resources.reservations;
  if (r.memoryBytes > 0 && usage.mem + r.memoryBytes > node.resources.memoryBytes) return "insufficient-memory";
  if (r.nanoCpus > 0 && usage.cpu + r.nanoCpus > node.resources.nanoCpus) return "insufficient-cpu";
  if (s.ports.some((p) => usage.ports.includes(p.protocol === "udp" ? -p.published : p.published))) return "port-conflict";
  const max = s.placement.maxReplicasPerNode ?? 0;
  if (max > 0 && (usage.perService.get(serviceId) ?? 0) >= max) return "max-replicas";
  return undefined;
}

/**
 * A naive scheduler: for every task, look at every node (O(tasks × nodes)), with the documented
 * ranking. The real one must make exactly the same choices.
 */
function reference(w: World): Map<string, string> {
  const usage = usageAfter(w, []);
  const taskCount = new Map(w.nodes.map((n) => [n.id, 0]));
  for (const t of w.existing)
    if (isLive(t) && t.nodeId && taskCount.has(t.nodeId)) taskCount.set(t.nodeId, (taskCount.get(t.nodeId) ?? 0) + 1);
  const failures = (serviceId: string, nodeId: string): number =>
    w.existing.filter((t) => t.serviceId === serviceId && t.nodeId === nodeId && (t.state === "FAILED" || t.state === "REJECTED")).length;
  const own = (serviceId: string, nodeId: string): number => (usage.get(nodeId) as Usage).perService.get(serviceId) ?? 0;
  const placed = new Map<string, string>();
  // Services in order of first appearance, each service's tasks in input order.
  const order = [...new Set(w.pending.map((p) => p.serviceId))];
  const byService = [...w.pending].sort((a, b) => order.indexOf(a.serviceId) - order.indexOf(b.serviceId));
  for (const p of byService) {
    const s = w.specs[p.serviceId];
    const staticOk = w.nodes.filter((n) => {
      const why = oracle(w, p.serviceId, n, usage.get(n.id) as Usage);
      return why === undefined || !["unavailable", "constraints"].includes(why);
    });
    let pool = staticOk.filter((n) => oracle(w, p.serviceId, n, usage.get(n.id) as Usage) === undefined);
    if (pool.length === 0) continue;
    if (s.placement.preferences.length > 0) {
      const valueOf = (n: NodeInfo): string => n.labels.zone ?? "\u0000";
      const values = [...new Set(pool.map(valueOf))].map((v) => {
        const members = staticOk.filter((n) => valueOf(n) === v);
        return {
          v,
          own: members.reduce((a, n) => a + own(p.serviceId, n.id), 0),
          tasks: members.reduce((a, n) => a + (taskCount.get(n.id) ?? 0), 0),
        };
      });
      values.sort((a, b) => a.own - b.own || a.tasks - b.tasks || (a.v < b.v ? -1 : a.v > b.v ? 1 : 0));
      pool = pool.filter((n) => valueOf(n) === values[0].v);
    }
    const key = (n: NodeInfo): number[] => [
      failures(p.serviceId, n.id) >= 1 ? 1 : 0,
      own(p.serviceId, n.id),
      taskCount.get(n.id) ?? 0,
      w.nodes.indexOf(n),
    ];
    pool.sort((a, b) => {
      const ka = key(a);
      const kb = key(b);
      for (let i = 0; i < ka.length; i++) if (ka[i] !== kb[i]) return ka[i] - kb[i];
      return 0;
    });
    const chosen = pool[0];
    placed.set(p.id, chosen.id);
    const x = usage.get(chosen.id) as Usage;
    x.cpu += s.resources.reservations.nanoCpus;
    x.mem += s.resources.reservations.memoryBytes;
    for (const port of s.ports) x.ports.push(port.protocol === "udp" ? -port.published : port.published);
    x.perService.set(p.serviceId, (x.perService.get(p.serviceId) ?? 0) + 1);
    taskCount.set(chosen.id, (taskCount.get(chosen.id) ?? 0) + 1);
  }
  return placed;
}

describe("schedule: safety", () => {
  it("makes the same choices as a naive O(tasks × nodes) scheduler", () => {
    fc.assert(
      fc.property(fc.oneof(worldArb(1, 10), worldArb(3, 40), worldArb(3, 60)), (w) => {
        const r = schedule(w.pending, w.nodes, w.existing, w.specs, { now: NOW });
        expect(new Map(r.assignments.map((a) => [a.taskId, a.nodeId]))).toEqual(reference(w));
      }),
      { numRuns: 400 },
    );
  });

  it("decides the same whether live tasks are listed or counted (liveCounts)", () => {
    fc.assert(
      fc.property(worldArb(3, 20), fc.func(fc.boolean()), (w, counted) => {
        // Any split: the adapter counts other services' live tasks and lists the rest.
        const split = w.existing.map((t) => isLive(t) && counted(t.id));
        const listed = w.existing.filter((_, i) => !split[i]);
        const liveCounts = countLive(w.existing.filter((_, i) => split[i]));
        const a = schedule(w.pending, w.nodes, w.existing, w.specs, { now: NOW });
        const b = schedule(w.pending, w.nodes, listed, w.specs, { now: NOW, liveCounts });
        expect(b).toEqual(a);
      }),
      { numRuns: 300 },
    );
  });

  it("counts the whole cluster minus one service as that service's others (liveCountsWithout)", () => {
    fc.assert(
      fc.property(worldArb(3, 20), (w) => {
        for (const serviceId of new Set(w.existing.map((t) => t.serviceId))) {
          const others = countLive(w.existing.filter((t) => t.serviceId !== serviceId));
          const all = countLive(w.existing);
          expect(liveCountsWithout(all, serviceId)).toEqual(others);
          // The input is left as it was (it is shared by every reconcile of the moment).
          expect(all).toEqual(countLive(w.existing));
        }
      }),
      { numRuns: 200 },
    );
  });

  it("places or explains every task exactly once, and only where it fits", () => {
    fc.assert(
      fc.property(worldArb(3), (w) => {
        const r = schedule(w.pending, w.nodes, w.existing, w.specs, { now: NOW });
        const ids = [...r.assignments.map((a) => a.taskId), ...r.unassigned.map((u) => u.taskId)].sort();
        expect(ids).toEqual(w.pending.map((p) => p.id).sort());

        const nodes = new Map(w.nodes.map((n) => [n.id, n]));
        const svc = new Map(w.pending.map((p) => [p.id, p.serviceId]));
        const usage = usageAfter(w, r.assignments);
        // Replay the assignments one by one: each must have been feasible when it was made.
        const replay = usageAfter({ ...w, pending: w.pending }, []);
        for (const a of r.assignments) {
          const node = nodes.get(a.nodeId) as NodeInfo;
          const serviceId = svc.get(a.taskId) as string;
          expect(node.status).toBe("ready");
          expect(node.availability).toBe("active");
          expect(oracle(w, serviceId, node, replay.get(a.nodeId) as Usage), `${a.taskId} on ${a.nodeId}`).toBeUndefined();
          const x = replay.get(a.nodeId) as Usage;
          const s = w.specs[serviceId];
          x.cpu += s.resources.reservations.nanoCpus;
          x.mem += s.resources.reservations.memoryBytes;
          for (const p of s.ports) x.ports.push(p.protocol === "udp" ? -p.published : p.published);
          x.perService.set(serviceId, (x.perService.get(serviceId) ?? 0) + 1);
        }
        // Nothing is left pending that would still fit somewhere.
        for (const u of r.unassigned) {
          const serviceId = svc.get(u.taskId) as string;
          for (const n of w.nodes) expect(oracle(w, serviceId, n, usage.get(n.id) as Usage), `${u.taskId} fits ${n.id}`).toBeDefined();
          const total = Object.values(u.counts).reduce((a, b) => a + (b ?? 0), 0);
          expect(total).toBe(w.nodes.length);
        }
      }),
      { numRuns: 300 },
    );
  });

  it("explains a pending task with exactly the oracle's counts", () => {
    fc.assert(
      fc.property(worldArb(1), (w) => {
        const r = schedule(w.pending, w.nodes, w.existing, w.specs, { now: NOW });
        const usage = usageAfter(w, r.assignments);
        for (const u of r.unassigned) {
          const expected: Record<string, number> = {};
          for (const n of w.nodes) {
            const why = oracle(w, "s0", n, usage.get(n.id) as Usage) as string;
            expected[why] = (expected[why] ?? 0) + 1;
          }
          expect(u.counts).toEqual(expected);
          for (const [why, count] of Object.entries(expected)) {
            const noun = count === 1 ? "1 node" : `${count} nodes`;
            expect(u.reason, why).toContain(noun);
          }
        }
      }),
      { numRuns: 300 },
    );
  });

  it("balances an unconstrained service across nodes to within one task", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 12 }), fc.integer({ min: 0, max: 60 }), (nodeCount, taskCount) => {
        const nodes = Array.from({ length: nodeCount }, (_, i): NodeInfo => ({
          id: `n${i}`,
          hostname: `h${i}`,
          role: "worker",
          status: "ready",
          availability: "active",
          labels: {},
          resources: { nanoCpus: CPU, memoryBytes: GiB },
        }));
        const pending = Array.from({ length: taskCount }, (_, i) => ({ id: `p${i}`, serviceId: "s" }));
        const r = schedule(pending, nodes, [], { s: replicated(taskCount) });
        const counts = nodes.map((n) => r.assignments.filter((a) => a.nodeId === n.id).length);
        expect(Math.max(...counts) - Math.min(...counts)).toBeLessThanOrEqual(1);
      }),
    );
  });

  it("balances a spread service across label values to within one task", () => {
    fc.assert(
      fc.property(
        fc.array(fc.constantFrom("a", "b", "c", undefined), { minLength: 1, maxLength: 12 }),
        fc.integer({ min: 0, max: 60 }),
        (zones, taskCount) => {
          const nodes = zones.map((z, i): NodeInfo => ({
            id: `n${i}`,
            hostname: `h${i}`,
            role: "worker",
            status: "ready",
            availability: "active",
            labels: z === undefined ? {} : { zone: z },
            resources: { nanoCpus: CPU, memoryBytes: GiB },
          }));
          const pending = Array.from({ length: taskCount }, (_, i) => ({ id: `p${i}`, serviceId: "s" }));
          const spec = replicated(taskCount, { placement: { preferences: [{ spread: "node.labels.zone" }] } });
          const r = schedule(pending, nodes, [], { s: spec });
          const values = [...new Set(zones.map((z) => z ?? "-"))];
          const perValue = values.map(
            (v) => r.assignments.filter((a) => (nodes.find((n) => n.id === a.nodeId)?.labels.zone ?? "-") === v).length,
          );
          expect(Math.max(...perValue) - Math.min(...perValue)).toBeLessThanOrEqual(1);
        },
      ),
    );
  });
});
