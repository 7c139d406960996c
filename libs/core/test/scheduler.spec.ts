import { describe, expect, it } from "vitest";
import { explain, schedule, type NodeInfo, type SchedulableTask, type ServiceSpec, type Task } from "../src";
import { CPU, GiB, makeNode, makeNodes, makeTask, MiB, NOW, replicated } from "./fixtures";

const pending = (n: number, serviceId = "svc", prefix = "p"): SchedulableTask[] =>
  Array.from({ length: n }, (_, i) => ({ id: `${prefix}${i + 1}`, serviceId }));

function perNode(assignments: readonly { nodeId: string }[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const a of assignments) out[a.nodeId] = (out[a.nodeId] ?? 0) + 1;
  return out;
}

const running = (id: string, nodeId: string, serviceId = "svc", over: Partial<Task> = {}): Task =>
  makeTask(id, { nodeId, serviceId, ...over });

describe("schedule: ranking", () => {
  it("spreads a service evenly over nodes", () => {
    const r = schedule(pending(7), makeNodes(3), [], { svc: replicated(7) });
    expect(perNode(r.assignments)).toEqual({ n1: 3, n2: 2, n3: 2 });
    expect(r.unassigned).toEqual([]);
  });

  it("prefers nodes with fewer tasks of the service, then fewer tasks in all", () => {
    const existing = [running("e1", "n1"), running("o1", "n2", "other"), running("o2", "n2", "other"), running("o3", "n3", "other")];
    const r = schedule(pending(2), makeNodes(3), existing, { svc: replicated(2), other: replicated(3) });
    // n1 already runs one of svc; n3 runs fewer tasks than n2.
    expect(r.assignments.map((a) => a.nodeId)).toEqual(["n3", "n2"]);
  });

  it("puts nodes with recent failures of the service last", () => {
    const existing = [running("f1", "n1", "svc", { state: "FAILED", finishedAt: NOW - 1_000 })];
    const r = schedule(pending(1), makeNodes(2), existing, { svc: replicated(1) }, { now: NOW });
    expect(r.assignments).toEqual([{ taskId: "p1", nodeId: "n2" }]);
  });

  it("forgets failures older than the window, and failures of other services", () => {
    const existing = [
      running("f1", "n1", "svc", { state: "FAILED", finishedAt: NOW - 10 * 60_000 }),
      running("f2", "n1", "other", { state: "FAILED", finishedAt: NOW - 1 }),
    ];
    const r = schedule(pending(1), makeNodes(2), existing, { svc: replicated(1) }, { now: NOW });
    expect(r.assignments).toEqual([{ taskId: "p1", nodeId: "n1" }]);
  });

  it("uses a node with failures when it is the only one left", () => {
    const existing = [running("f1", "n1", "svc", { state: "REJECTED", finishedAt: NOW })];
    const r = schedule(pending(1), makeNodes(1), existing, { svc: replicated(1) }, { now: NOW });
    expect(r.assignments).toEqual([{ taskId: "p1", nodeId: "n1" }]);
  });
});

describe("schedule: filters", () => {
  it("never uses down, unknown, paused or drained nodes", () => {
    const nodes = [
      makeNode("n1", { status: "down" }),
      makeNode("n2", { status: "unknown" }),
      makeNode("n3", { availability: "pause" }),
      makeNode("n4", { availability: "drain" }),
    ];
    const r = schedule(pending(2), nodes, [], { svc: replicated(2) });
    expect(r.assignments).toEqual([]);
    expect(r.unassigned.map((u) => u.reason)).toEqual([
      "no suitable node (4 nodes not available)",
      "no suitable node (4 nodes not available)",
    ]);
    expect(r.unassigned[0].counts).toEqual({ unavailable: 4 });
  });

  it("books memory as it assigns, so one batch never over-commits a node", () => {
    const spec = replicated(3, { resources: { reservations: { memoryBytes: 512 * MiB } } });
    const r = schedule(pending(3), [makeNode("n1", { resources: { nanoCpus: 4 * CPU, memoryBytes: 1 * GiB } })], [], { svc: spec });
    expect(r.assignments.map((a) => a.taskId)).toEqual(["p1", "p2"]);
    expect(r.unassigned).toEqual([
      { taskId: "p3", reason: "no suitable node (insufficient memory on 1 node)", counts: { "insufficient-memory": 1 } },
    ]);
  });

  it("subtracts the reservations of live tasks already on the node, not of stopped ones", () => {
    const spec = replicated(2, { resources: { reservations: { nanoCpus: 2 * CPU } } });
    const existing = [
      running("e1", "n1", "svc", { id: "e1" }),
      running("e2", "n1", "svc", { desiredState: "shutdown" }),
      running("e3", "n1", "svc", { state: "FAILED" }),
    ];
    const r = schedule(pending(2), [makeNode("n1")], existing, { svc: spec });
    expect(r.assignments.map((a) => a.taskId)).toEqual(["p1"]);
    expect(r.unassigned[0].reason).toBe("no suitable node (insufficient cpu on 1 node)");
  });

  it("ignores pending tasks found among the existing ones", () => {
    const spec = replicated(1, { resources: { reservations: { memoryBytes: 8 * GiB } } });
    const p = makeTask("p1", { nodeId: "n1", state: "PENDING" });
    const r = schedule([{ id: "p1", serviceId: "svc", nodeId: "n1" }], [makeNode("n1")], [p], { svc: spec });
    expect(r.assignments).toEqual([{ taskId: "p1", nodeId: "n1" }]);
  });

  it("applies constraints on id, hostname, role and labels", () => {
    const nodes = [
      makeNode("n1", { role: "manager", labels: { zone: "a" } }),
      makeNode("n2", { labels: { zone: "a" } }),
      makeNode("n3", { labels: { zone: "b" } }),
      makeNode("n4", { hostname: "skip.me", labels: { zone: "a" } }),
    ];
    const spec = replicated(4, {
      placement: { constraints: ["node.labels.zone==a", "node.role!=manager", "node.hostname!=SKIP.me", "node.id!=n9"] },
    });
    const r = schedule(pending(3), nodes, [], { svc: spec });
    expect(new Set(r.assignments.map((a) => a.nodeId))).toEqual(new Set(["n2"]));
    const only = replicated(1, { placement: { constraints: ["node.id==n3"] } });
    expect(schedule(pending(1), nodes, [], { svc: only }).assignments).toEqual([{ taskId: "p1", nodeId: "n3" }]);
  });

  it("refuses a host port twice on a node, tcp and udp apart", () => {
    const tcp = replicated(3, { ports: [{ published: 80, target: 80, protocol: "tcp", mode: "host" }] });
    const udp = replicated(1, { name: "dns", ports: [{ published: 80, target: 53, protocol: "udp", mode: "host" }] });
    const existing = [running("e1", "n1", "tcp")];
    const r = schedule([...pending(3, "tcp"), ...pending(1, "udp", "u")], makeNodes(3), existing, { tcp, udp });
    expect(r.assignments).toEqual([
      { taskId: "p1", nodeId: "n2" },
      { taskId: "p2", nodeId: "n3" },
      { taskId: "u1", nodeId: "n1" },
    ]);
    expect(r.unassigned).toEqual([
      { taskId: "p3", reason: "no suitable node (host port already in use on 3 nodes)", counts: { "port-conflict": 3 } },
    ]);
  });

  it("places many tasks of an ingress-published service on one node: the mesh port is not the node's", () => {
    const web = replicated(3, { ports: [{ published: 8080, target: 80 }] });
    const r = schedule(pending(3), makeNodes(1), [running("e1", "n1")], { svc: web });
    expect(r.assignments).toHaveLength(3);
    expect(r.unassigned).toEqual([]);
  });

  it("honours max replicas per node", () => {
    const spec = replicated(5, { placement: { maxReplicasPerNode: 2 } });
    const r = schedule(pending(5), makeNodes(2), [running("e", "n1")], { svc: spec });
    expect(perNode(r.assignments)).toEqual({ n1: 1, n2: 2 });
    expect(r.unassigned[0].reason).toBe("no suitable node (max replicas per node reached on 2 nodes)");
  });

  it("explains with counts per reason, largest first, each node once", () => {
    const spec = replicated(1, {
      resources: { reservations: { memoryBytes: 16 * GiB } },
      placement: { constraints: ["node.role==worker"] },
    });
    const nodes = [
      makeNode("n1"),
      makeNode("n2"),
      makeNode("n3"),
      makeNode("n4", { status: "down" }),
      makeNode("n5", { role: "manager", availability: "drain" }),
    ];
    const r = schedule(pending(1), nodes, [], { svc: spec });
    expect(r.unassigned[0].reason).toBe("no suitable node (insufficient memory on 3 nodes; 2 nodes not available)");
    expect(explain({ "insufficient-memory": 3, unavailable: 1 })).toBe(
      "no suitable node (insufficient memory on 3 nodes; 1 node not available)",
    );
    expect(explain({ constraints: 1, "insufficient-cpu": 1 })).toBe(
      "no suitable node (scheduling constraints not satisfied on 1 node; insufficient cpu on 1 node)",
    );
  });

  it("explains an empty cluster and a service without a spec", () => {
    expect(schedule(pending(1), [], [], { svc: replicated(1) }).unassigned[0].reason).toBe("no suitable node (no nodes in the cluster)");
    expect(schedule(pending(1, "ghost"), makeNodes(1), [], {}).unassigned[0].reason).toBe("no spec for service ghost");
  });

  it("places a global task only on its node", () => {
    const spec: ServiceSpec = { ...replicated(1), mode: { kind: "global" } };
    const nodes = [makeNode("n1"), makeNode("n2", { availability: "drain" })];
    const r = schedule(
      [
        { id: "g1", serviceId: "svc", nodeId: "n1" },
        { id: "g2", serviceId: "svc", nodeId: "n2" },
        { id: "g3", serviceId: "svc", nodeId: "n9" },
      ],
      nodes,
      [],
      new Map([["svc", spec]]),
    );
    expect(r.assignments).toEqual([{ taskId: "g1", nodeId: "n1" }]);
    expect(r.unassigned.map((u) => [u.taskId, u.reason])).toEqual([
      ["g2", "no suitable node (1 node not available)"],
      ["g3", "no suitable node (1 node not available)"],
    ]);
  });

  it("places global tasks before replicated ones compete for the node", () => {
    const big = { resources: { reservations: { memoryBytes: 6 * GiB } } };
    const globalSpec: ServiceSpec = { ...replicated(1, big), mode: { kind: "global" } };
    const r = schedule(
      [
        { id: "r1", serviceId: "rep" },
        { id: "g1", serviceId: "glob", nodeId: "n1" },
      ],
      [makeNode("n1")],
      [],
      {
        rep: replicated(1, big),
        glob: globalSpec,
      },
    );
    expect(r.assignments).toEqual([{ taskId: "g1", nodeId: "n1" }]);
    expect(r.unassigned.map((u) => u.taskId)).toEqual(["r1"]);
  });
});

describe("schedule: spread preferences", () => {
  const zoned = (zones: (string | undefined)[]): NodeInfo[] =>
    zones.map((z, i) => makeNode(`n${i + 1}`, { labels: z === undefined ? {} : { zone: z } }));
  const spread = (n: number, extra: ServiceSpec["placement"]["preferences"] = []) =>
    replicated(n, { placement: { preferences: [{ spread: "node.labels.zone" }, ...extra] } });

  function byZone(nodes: NodeInfo[], assignments: readonly { nodeId: string }[]): Record<string, number> {
    const out: Record<string, number> = {};
    for (const a of assignments) {
      const z = nodes.find((n) => n.id === a.nodeId)?.labels.zone ?? "-";
      out[z] = (out[z] ?? 0) + 1;
    }
    return out;
  }

  it("balances label values first, whatever the number of nodes behind each", () => {
    const nodes = zoned(["a", "b", "b", "b"]);
    const r = schedule(pending(4), nodes, [], { svc: spread(4) });
    expect(byZone(nodes, r.assignments)).toEqual({ a: 2, b: 2 });
    expect(perNode(r.assignments).n1).toBe(2);
  });

  it("counts the tasks already running in each value", () => {
    const nodes = zoned(["a", "b", "c"]);
    const existing = [running("e1", "n1"), running("e2", "n1"), running("e3", "n2")];
    const r = schedule(pending(3), nodes, existing, { svc: spread(6) });
    expect(byZone(nodes, r.assignments)).toEqual({ b: 1, c: 2 });
  });

  it("treats nodes without the label as one more group", () => {
    const nodes = zoned(["a", undefined, undefined]);
    const r = schedule(pending(4), nodes, [], { svc: spread(4) });
    expect(byZone(nodes, r.assignments)).toEqual({ a: 2, "-": 2 });
  });

  it("moves to the next value when one is full", () => {
    const nodes = zoned(["a", "b"]).map((n) => (n.id === "n1" ? { ...n, resources: { nanoCpus: CPU, memoryBytes: GiB } } : n));
    const spec = replicated(4, {
      resources: { reservations: { memoryBytes: GiB } },
      placement: { preferences: [{ spread: "node.labels.zone" }] },
    });
    const r = schedule(pending(4), nodes, [], { svc: spec });
    expect(byZone(nodes, r.assignments)).toEqual({ a: 1, b: 3 });
  });

  it("spreads level by level with several preferences", () => {
    const nodes = [
      makeNode("n1", { labels: { zone: "a", rack: "1" } }),
      makeNode("n2", { labels: { zone: "a", rack: "1" } }),
      makeNode("n3", { labels: { zone: "a", rack: "2" } }),
      makeNode("n4", { labels: { zone: "b", rack: "3" } }),
    ];
    const r = schedule(pending(4), nodes, [], { svc: spread(4, [{ spread: "node.labels.rack" }]) });
    expect(perNode(r.assignments)).toEqual({ n4: 2, n3: 1, n1: 1 });
  });
});
