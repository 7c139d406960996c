// The scheduler's filters and its per-node accounting. Each filter answers one question about
// one node for one task; the pipeline's order decides which reason a rejected node is counted
// under, so every node appears exactly once in an explanation.
import { matchesConstraints, type Constraint } from "./constraints";
import { isHostPort } from "./ingress";
import { isFailure, isLive } from "./task-state";
import type { NodeInfo, PortConfig, ServiceSpec, Task } from "./types";

/** Why a node cannot take a task. */
export type FilterReason = "unavailable" | "constraints" | "insufficient-memory" | "insufficient-cpu" | "port-conflict" | "max-replicas";

/** Per-node accounting, updated as tasks are assigned so one batch never over-commits a node. */
export interface NodeState {
  readonly node: NodeInfo;
  /** Position in the input, the last tie-break, so results do not depend on map order. */
  readonly index: number;
  freeNanoCpus: number;
  freeMemoryBytes: number;
  /** Host ports in use, as `portKey` numbers. */
  readonly usedPorts: Set<number>;
  /** Live tasks of every service on the node. */
  taskCount: number;
  /** Live tasks per service id. */
  readonly serviceCounts: Map<string, number>;
  /** Recent FAILED/REJECTED tasks per service id. */
  readonly recentFailures: Map<string, number>;
}

/** What each task of one service asks of a node; computed once per service, not per task. */
export interface TaskDemand {
  readonly serviceId: string;
  readonly nanoCpus: number;
  readonly memoryBytes: number;
  readonly portKeys: readonly number[];
  readonly constraints: readonly Constraint[];
  /** 0 means no limit. */
  readonly maxReplicasPerNode: number;
}

/** A filter's verdict: the node is fine, or the reason it is not. */
export type FilterResult = "ok" | FilterReason;

/**
 * One step of the pipeline. `isStatic` filters depend only on the node and the spec, never on
 * what the scheduler assigned, so they are evaluated once per service instead of once per task.
 */
export interface SchedulerFilter {
  /** The reason key this filter reports. */
  readonly reason: FilterReason;
  readonly isStatic: boolean;
  /** "ok" when `node` can take `task` as far as this filter is concerned, else `reason`. */
  readonly run: (task: TaskDemand, node: NodeState) => FilterResult;
}

function filter(reason: FilterReason, isStatic: boolean, fits: (task: TaskDemand, node: NodeState) => boolean): SchedulerFilter {
  return { reason, isStatic, run: (task, node) => (fits(task, node) ? "ok" : reason) };
}

/** tcp and udp ports are distinct resources: udp keys are offset past the tcp range. */
export function portKey(p: Pick<PortConfig, "published" | "protocol">): number {
  return p.protocol === "udp" ? 65536 + p.published : p.published;
}

export const availabilityFilter = filter("unavailable", true, (_task, n) => n.node.status === "ready" && n.node.availability === "active");

export const constraintsFilter = filter("constraints", true, (task, n) => matchesConstraints(n.node, task.constraints));

export const memoryFilter = filter(
  "insufficient-memory",
  false,
  (task, n) => task.memoryBytes === 0 || task.memoryBytes <= n.freeMemoryBytes,
);

export const cpuFilter = filter("insufficient-cpu", false, (task, n) => task.nanoCpus === 0 || task.nanoCpus <= n.freeNanoCpus);

export const portsFilter = filter("port-conflict", false, (task, n) => task.portKeys.every((k) => !n.usedPorts.has(k)));

export const maxReplicasFilter = filter(
  "max-replicas",
  false,
  (task, n) => task.maxReplicasPerNode === 0 || (n.serviceCounts.get(task.serviceId) ?? 0) < task.maxReplicasPerNode,
);

/**
 * The pipeline, static filters first: a node the operator or the spec rules out is reported as
 * such, not as "insufficient memory", which would send the user hunting for the wrong fix.
 */
export const FILTERS: readonly SchedulerFilter[] = [
  availabilityFilter,
  constraintsFilter,
  memoryFilter,
  cpuFilter,
  portsFilter,
  maxReplicasFilter,
];

export const STATIC_FILTERS = FILTERS.filter((f) => f.isStatic);
export const DYNAMIC_FILTERS = FILTERS.filter((f) => !f.isStatic);

/** Runs `filters` in order and returns the first failure, or "ok". */
export function runFilters(task: TaskDemand, node: NodeState, filters: readonly SchedulerFilter[] = FILTERS): FilterResult {
  for (const f of filters) {
    const r = f.run(task, node);
    if (r !== "ok") return r;
  }
  return "ok";
}

/** Rejected nodes counted by reason. */
export type ReasonCounts = Readonly<Partial<Record<FilterReason, number>>>;

const plural = (n: number): string => `${n} node${n === 1 ? "" : "s"}`;

const PHRASES: Readonly<Record<FilterReason, (n: number) => string>> = {
  unavailable: (n) => `${plural(n)} not available`,
  constraints: (n) => `scheduling constraints not satisfied on ${plural(n)}`,
  "insufficient-memory": (n) => `insufficient memory on ${plural(n)}`,
  "insufficient-cpu": (n) => `insufficient cpu on ${plural(n)}`,
  "port-conflict": (n) => `host port already in use on ${plural(n)}`,
  "max-replicas": (n) => `max replicas per node reached on ${plural(n)}`,
};

/**
 * Explains a task left pending from the rejection counts, like swarmkit's pipeline.Explain():
 * "no suitable node (insufficient memory on 3 nodes; 1 node not available)". Largest count first;
 * equal counts in pipeline order.
 */
export function explain(counts: ReasonCounts): string {
  const order = FILTERS.map((f) => f.reason);
  const parts = order
    .filter((r) => (counts[r] ?? 0) > 0)
    .sort((a, b) => (counts[b] ?? 0) - (counts[a] ?? 0) || order.indexOf(a) - order.indexOf(b))
    .map((r) => PHRASES[r](counts[r] ?? 0));
  return `no suitable node (${parts.length > 0 ? parts.join("; ") : "no nodes in the cluster"})`;
}

/** The demand of one task of `spec`, with constraints already parsed. */
export function demandOf(serviceId: string, spec: ServiceSpec, constraints: readonly Constraint[]): TaskDemand {
  return {
    serviceId,
    nanoCpus: spec.resources.reservations.nanoCpus,
    memoryBytes: spec.resources.reservations.memoryBytes,
    portKeys: spec.ports.filter(isHostPort).map(portKey),
    constraints,
    maxReplicasPerNode: spec.placement.maxReplicasPerNode ?? 0,
  };
}

/** Books `count` tasks like `task` on `node`: the accounting every later filter check sees. */
export function reserve(task: TaskDemand, node: NodeState, count = 1): void {
  node.freeNanoCpus -= task.nanoCpus * count;
  node.freeMemoryBytes -= task.memoryBytes * count;
  for (const k of task.portKeys) node.usedPorts.add(k);
  node.taskCount += count;
  node.serviceCounts.set(task.serviceId, (node.serviceCounts.get(task.serviceId) ?? 0) + count);
}

/**
 * Live tasks counted per node id, then per service id, rather than listed: what an adapter
 * reads in one aggregate query when the cluster holds tens of thousands of tasks. For the
 * accounting, a count here is exactly the same as that many live tasks in a list.
 */
export type LiveCounts = ReadonlyMap<string, ReadonlyMap<string, number>>;

/** The live tasks of `tasks` (desired running, not finished, on a node) as LiveCounts. */
export function countLive(tasks: readonly Task[]): Map<string, Map<string, number>> {
  const out = new Map<string, Map<string, number>>();
  for (const t of tasks) {
    if (t.nodeId === undefined || !isLive(t)) continue;
    let perService = out.get(t.nodeId);
    if (!perService) out.set(t.nodeId, (perService = new Map()));
    perService.set(t.serviceId, (perService.get(t.serviceId) ?? 0) + 1);
  }
  return out;
}

/**
 * LiveCounts from a compact form: `services` numbers the services, and each node maps to the
 * numbers of its live tasks' services, comma-separated, one per task ("3,17,3": two tasks of
 * service 3). An adapter reads this in one pass grouped by node. A number with no service is an
 * error rather than a task counted nowhere.
 */
export function liveCountsOfNumbered(
  services: readonly string[],
  nodes: Readonly<Record<string, string>>,
): Map<string, Map<string, number>> {
  const byNumber = new Map(services.map((id, i) => [String(i), id]));
  const out = new Map<string, Map<string, number>>();
  for (const [nodeId, list] of Object.entries(nodes)) {
    const perService = new Map<string, number>();
    for (const number of list.split(",")) {
      const serviceId = byNumber.get(number);
      if (serviceId === undefined) throw new Error(`live counts of node ${nodeId}: no service numbered "${number}"`);
      perService.set(serviceId, (perService.get(serviceId) ?? 0) + 1);
    }
    out.set(nodeId, perService);
  }
  return out;
}

/**
 * `counts` without one service's tasks: the other services' load, from counts read for the whole
 * cluster (so that one aggregate serves every service reconciled at the same moment). Inner maps
 * without that service are shared with `counts`, not copied.
 */
export function liveCountsWithout(counts: LiveCounts, serviceId: string): LiveCounts {
  const out = new Map<string, ReadonlyMap<string, number>>();
  for (const [nodeId, perService] of counts) {
    if (!perService.has(serviceId)) out.set(nodeId, perService);
    else if (perService.size > 1) out.set(nodeId, new Map([...perService].filter(([id]) => id !== serviceId)));
  }
  return out;
}

/** How far back a failure counts as recent, and from how many a node ranks last for a service. */
export interface FailureWindow {
  /** Epoch ms; without it every failed task passed in counts as recent. */
  readonly now?: number;
  readonly windowMs: number;
}

/**
 * Builds the accounting from the tasks already placed. Live tasks (desired running, not
 * terminal) hold their service's reservations and host ports: tasks we asked to stop release
 * theirs at once, as in swarmkit, so a stop-first update can reuse the node. Reservations come
 * from the service's spec in `specOf`; a service missing there holds nothing. `counts` adds
 * live tasks that were counted instead of listed (none of them may also be in `existing`).
 */
export function buildNodeStates(
  nodes: readonly NodeInfo[],
  existing: readonly Task[],
  skip: ReadonlySet<string>,
  specOf: (serviceId: string) => ServiceSpec | undefined,
  failures: FailureWindow,
  counts?: LiveCounts,
): { states: NodeState[]; byId: Map<string, NodeState> } {
  const states = nodes.map((node, index): NodeState => ({
    node,
    index,
    freeNanoCpus: node.resources.nanoCpus,
    freeMemoryBytes: node.resources.memoryBytes,
    usedPorts: new Set(),
    taskCount: 0,
    serviceCounts: new Map(),
    recentFailures: new Map(),
  }));
  const byId = new Map(states.map((s) => [s.node.id, s]));
  const demands = new Map<string, TaskDemand>();
  const held = (serviceId: string): TaskDemand => {
    let demand = demands.get(serviceId);
    if (!demand) {
      const spec = specOf(serviceId);
      demand = spec
        ? demandOf(serviceId, spec, [])
        : { serviceId, nanoCpus: 0, memoryBytes: 0, portKeys: [], constraints: [], maxReplicasPerNode: 0 };
      demands.set(serviceId, demand);
    }
    return demand;
  };
  for (const [nodeId, perService] of counts ?? []) {
    const state = byId.get(nodeId);
    if (!state) continue;
    for (const [serviceId, n] of perService) if (n > 0) reserve(held(serviceId), state, n);
  }
  const since = failures.now === undefined ? -Infinity : failures.now - failures.windowMs;
  for (const t of existing) {
    if (t.nodeId === undefined || skip.has(t.id)) continue;
    const state = byId.get(t.nodeId);
    if (!state) continue;
    if (isLive(t)) {
      reserve(held(t.serviceId), state);
    } else if (isFailure(t.state) && (t.finishedAt ?? t.updatedAt) >= since) {
      state.recentFailures.set(t.serviceId, (state.recentFailures.get(t.serviceId) ?? 0) + 1);
    }
  }
  return { states, byId };
}
