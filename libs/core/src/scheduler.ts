// The scheduler: pending tasks → nodes. Filters decide which nodes can take a task, a ranking
// decides which of those gets it, and a task that fits nowhere stays pending with an explanation.
//
// Speed comes from grouping: every pending task of one service asks the same of a node, so the
// static filters (availability, constraints) run once per service, and the nodes that pass sit
// in heaps keyed by their counts. A node that fails a dynamic filter (memory, cpu, ports, max
// replicas) for a service will fail it for every later task of that service too — capacity only
// shrinks while a batch is placed — so it leaves the heap for good. Placing T tasks of S services
// on N nodes costs O(S·N + T·log N) instead of O(T·N).
import { BinaryHeap } from "./binary-heap";
import { parseConstraints, spreadLabel } from "./constraints";
import { DomainError } from "./errors";
import {
  buildNodeStates,
  demandOf,
  DYNAMIC_FILTERS,
  explain,
  FILTERS,
  runFilters,
  STATIC_FILTERS,
  reserve,
  type FilterReason,
  type LiveCounts,
  type NodeState,
  type ReasonCounts,
  type TaskDemand,
} from "./scheduler-filters";
import type { NodeInfo, ServiceSpec, Task } from "./types";

/** A task waiting for a node. Global tasks come with the one node they may run on. */
export interface SchedulableTask {
  readonly id: string;
  readonly serviceId: string;
  /** Set for global tasks: only this node is considered. */
  readonly nodeId?: string;
}

/** A placement decision. */
export interface Assignment {
  readonly taskId: string;
  readonly nodeId: string;
}

/** A task that fits nowhere, with the explanation to store as its message. */
export interface UnassignedTask {
  readonly taskId: string;
  /** "no suitable node (insufficient memory on 3 nodes; 1 node not available)". */
  readonly reason: string;
  /** Nodes rejected per reason; each node counted once, under the first filter it failed. */
  readonly counts: ReasonCounts;
}

/** The outcome of one scheduling pass. */
export interface ScheduleResult {
  readonly assignments: readonly Assignment[];
  readonly unassigned: readonly UnassignedTask[];
}

/** Services' specs by service id: a Map, or a plain object. */
export type SpecsByService = ReadonlyMap<string, ServiceSpec> | Readonly<Record<string, ServiceSpec>>;

/** Tuning of the ranking. */
export interface ScheduleOptions {
  /** The clock, for "recent" failures; without it every failed task passed in is recent. */
  readonly now?: number;
  /** How long a failure of a service on a node counts against that node (default 5 minutes). */
  readonly failureWindowMs?: number;
  /** Failures of a service within the window that rank a node last for it (default 1). */
  readonly failureThreshold?: number;
  /**
   * Live tasks on nodes counted per node and service instead of listed in `existingTasks`
   * (typically other services' tasks, read as one aggregate); a task must not be in both.
   */
  readonly liveCounts?: LiveCounts;
}

export const DEFAULT_FAILURE_WINDOW_MS = 5 * 60_000;

interface Group {
  readonly demand: TaskDemand;
  readonly labels: readonly string[];
}

/**
 * A node as seen by one service's placement: the counts the ranking reads, copied out of the
 * node's maps so the heap compares plain numbers (this is the scheduler's innermost loop).
 */
interface Candidate {
  readonly state: NodeState;
  /** Tasks of this service on the node. */
  own: number;
  /** Recent failures of this service on the node reached the threshold: rank it last. */
  readonly failing: boolean;
}

/** A level of the spread tree: a leaf holds nodes, a branch holds one subtree per label value. */
type Tree =
  | { readonly kind: "leaf"; readonly value: string; readonly heap: BinaryHeap<Candidate>; own: number; taskCount: number }
  | { readonly kind: "branch"; readonly value: string; readonly heap: BinaryHeap<Tree>; own: number; taskCount: number };

// Nodes without the label form their own group (Docker does the same); "\u0000" sorts it first
// among equals and cannot clash with a real label value.
const MISSING = "\u0000";

function treeLess(a: Tree, b: Tree): boolean {
  if (a.own !== b.own) return a.own < b.own;
  if (a.taskCount !== b.taskCount) return a.taskCount < b.taskCount;
  return a.value < b.value;
}

function candidateLess(a: Candidate, b: Candidate): boolean {
  if (a.failing !== b.failing) return b.failing;
  if (a.own !== b.own) return a.own < b.own;
  if (a.state.taskCount !== b.state.taskCount) return a.state.taskCount < b.state.taskCount;
  return a.state.index < b.state.index;
}

/** How one service ranks nodes: its id, its demand, and the failure threshold. */
interface Ranking {
  readonly serviceId: string;
  readonly demand: TaskDemand;
  readonly threshold: number;
  /** Tasks of the service to place in this pass. */
  readonly count: number;
}

function candidateOf(state: NodeState, r: Ranking): Candidate {
  return {
    state,
    own: state.serviceCounts.get(r.serviceId) ?? 0,
    failing: (state.recentFailures.get(r.serviceId) ?? 0) >= r.threshold,
  };
}

/**
 * The nodes a leaf needs in its heap. Placing k tasks greedily only ever uses nodes among the k
 * best that can take a task now: a node's rank and fit only get worse once it is given a task,
 * and at step j at most j-1 of the best are used up. So for a small service the heap holds k
 * nodes instead of all of them, and a node outside that set never has its dynamic filters run.
 */
function leafCandidates(members: readonly NodeState[], r: Ranking): Candidate[] {
  if (r.count * 4 >= members.length) return members.map((m) => candidateOf(m, r));
  const worstFirst = new BinaryHeap<Candidate>((a, b) => candidateLess(b, a));
  for (const m of members) {
    const c = candidateOf(m, r);
    if (worstFirst.size >= r.count && !candidateLess(c, worstFirst.peek() as Candidate)) continue;
    if (runFilters(r.demand, m, DYNAMIC_FILTERS) !== "ok") continue;
    if (worstFirst.size >= r.count) worstFirst.pop();
    worstFirst.push(c);
  }
  const kept: Candidate[] = [];
  for (let c = worstFirst.pop(); c; c = worstFirst.pop()) kept.push(c);
  return kept;
}

function buildTree(members: readonly NodeState[], labels: readonly string[], value: string, r: Ranking): Tree {
  let own = 0;
  let taskCount = 0;
  // Spread balances on every node of a label value, not only the ones kept in its heap.
  for (const m of members) {
    own += m.serviceCounts.get(r.serviceId) ?? 0;
    taskCount += m.taskCount;
  }
  if (labels.length === 0) {
    return { kind: "leaf", value, heap: new BinaryHeap(candidateLess, leafCandidates(members, r)), own, taskCount };
  }
  const [label, ...rest] = labels;
  const groups = new Map<string, NodeState[]>();
  for (const m of members) {
    const v = Object.prototype.hasOwnProperty.call(m.node.labels, label) ? m.node.labels[label] : MISSING;
    const g = groups.get(v);
    if (g) g.push(m);
    else groups.set(v, [m]);
  }
  const children = [...groups].map(([v, g]) => buildTree(g, rest, v, r));
  return { kind: "branch", value, heap: new BinaryHeap(treeLess, children), own, taskCount };
}

/**
 * The best node for `task` under `tree`, left at the top of every heap on its path; nodes and
 * subtrees that cannot take the task are dropped on the way (they never will, in this batch).
 */
function take(tree: Tree, task: TaskDemand): NodeState | undefined {
  if (tree.kind === "leaf") {
    for (let top = tree.heap.peek(); top; top = tree.heap.peek()) {
      if (runFilters(task, top.state, DYNAMIC_FILTERS) === "ok") return top.state;
      tree.heap.pop();
    }
    return undefined;
  }
  for (let child = tree.heap.peek(); child; child = tree.heap.peek()) {
    const found = take(child, task);
    if (found) return found;
    tree.heap.pop();
  }
  return undefined;
}

/** Counts the assignment `take` just found along its path, re-sifting each heap's top. */
function commit(tree: Tree): void {
  tree.own++;
  tree.taskCount++;
  if (tree.kind === "branch") commit(tree.heap.peek() as Tree);
  else (tree.heap.peek() as Candidate).own++;
  tree.heap.updateTop();
}

function countReasons(task: TaskDemand, states: readonly NodeState[]): ReasonCounts {
  const counts: Partial<Record<FilterReason, number>> = {};
  for (const s of states) {
    const r = runFilters(task, s, FILTERS);
    if (r !== "ok") counts[r] = (counts[r] ?? 0) + 1;
  }
  return counts;
}

function lookup(specs: SpecsByService): (id: string) => ServiceSpec | undefined {
  if (specs instanceof Map) return (id) => specs.get(id);
  const record = specs as Readonly<Record<string, ServiceSpec>>;
  return (id) => (Object.prototype.hasOwnProperty.call(record, id) ? record[id] : undefined);
}

/**
 * Places `pendingTasks` on `nodes`. `existingTasks` are the tasks already on nodes (any service,
 * any state: live ones hold resources and ports, recent failures lower a node's rank); pending
 * tasks found among them are ignored there. `specsByService` must hold the spec of every
 * service in either list — a service missing there holds no resources, and its pending tasks stay
 * pending.
 *
 * Global tasks (with `nodeId`) are placed first, because they have no alternative. Then, per
 * service in order of first appearance: nodes that pass every filter, ranked by spread
 * preference (fewest tasks of the service per label value, level by level), then recent
 * failures of the service (last), fewest tasks of the service, fewest tasks in all.
 */
export function schedule(
  pendingTasks: readonly SchedulableTask[],
  nodes: readonly NodeInfo[],
  existingTasks: readonly Task[],
  specsByService: SpecsByService,
  options: ScheduleOptions = {},
): ScheduleResult {
  const specOf = lookup(specsByService);
  const pendingIds = new Set(pendingTasks.map((t) => t.id));
  const window = {
    ...(options.now !== undefined ? { now: options.now } : {}),
    windowMs: options.failureWindowMs ?? DEFAULT_FAILURE_WINDOW_MS,
  };
  const { states, byId } = buildNodeStates(nodes, existingTasks, pendingIds, specOf, window, options.liveCounts);
  const run: Run = {
    states,
    byId,
    threshold: Math.max(1, options.failureThreshold ?? 1),
    groupOf: groupsOf(specOf),
    staticPass: new Map(),
    assignments: [],
    unassigned: [],
  };
  const replicated = new Map<string, SchedulableTask[]>();
  for (const t of pendingTasks) {
    if (t.nodeId !== undefined) placeGlobal(run, t, t.nodeId);
    else {
      const tasks = replicated.get(t.serviceId);
      if (tasks) tasks.push(t);
      else replicated.set(t.serviceId, [t]);
    }
  }
  for (const [serviceId, tasks] of replicated) placeReplicated(run, serviceId, tasks);
  return { assignments: run.assignments, unassigned: run.unassigned };
}

/** One schedule() call's state: the nodes as the placements so far left them, and the results. */
interface Run {
  readonly states: NodeState[];
  readonly byId: ReadonlyMap<string, NodeState>;
  readonly threshold: number;
  readonly groupOf: (serviceId: string) => Group | string;
  /** Nodes passing the static filters, per constraint set (services often share one: none). */
  readonly staticPass: Map<string, NodeState[]>;
  readonly assignments: Assignment[];
  readonly unassigned: UnassignedTask[];
}

/**
 * Per service, once: what its tasks ask of a node and the labels it spreads over, or why it
 * cannot be scheduled at all (no spec, a spec that does not parse).
 */
function groupsOf(specOf: (id: string) => ServiceSpec | undefined): (serviceId: string) => Group | string {
  const groups = new Map<string, Group | string>();
  return (serviceId) => {
    let g = groups.get(serviceId);
    if (g === undefined) {
      const spec = specOf(serviceId);
      if (!spec) g = `no spec for service ${serviceId}`;
      else {
        try {
          g = {
            demand: demandOf(serviceId, spec, parseConstraints(spec.placement.constraints)),
            labels: spec.placement.preferences.map((p) => spreadLabel(p)),
          };
        } catch (e) {
          if (!(e instanceof DomainError)) throw e;
          g = e.message;
        }
      }
      groups.set(serviceId, g);
    }
    return g;
  };
}

/** A global task: its one node takes it if every filter passes, or it stays pending saying why. */
function placeGlobal(run: Run, t: SchedulableTask, nodeId: string): void {
  const group = run.groupOf(t.serviceId);
  if (typeof group === "string") {
    run.unassigned.push({ taskId: t.id, reason: group, counts: {} });
    return;
  }
  const demand = group.demand;
  const node = run.byId.get(nodeId);
  const verdict = node ? runFilters(demand, node, FILTERS) : "unavailable";
  if (node && verdict === "ok") {
    reserve(demand, node);
    run.assignments.push({ taskId: t.id, nodeId: node.node.id });
  } else {
    const counts = { [verdict]: 1 };
    run.unassigned.push({ taskId: t.id, reason: explain(counts), counts });
  }
}

/** A replicated service's pending tasks, over the ranked tree of the nodes that may take them. */
function placeReplicated(run: Run, serviceId: string, tasks: readonly SchedulableTask[]): void {
  const group = run.groupOf(serviceId);
  if (typeof group === "string") {
    for (const t of tasks) run.unassigned.push({ taskId: t.id, reason: group, counts: {} });
    return;
  }
  const demand = group.demand;
  // Static filters depend on the constraints alone, which services often share (most have none).
  const staticKey = demand.constraints.map((c) => c.expression).join("\n");
  let eligible = run.staticPass.get(staticKey);
  if (!eligible) {
    eligible = run.states.filter((s) => runFilters(demand, s, STATIC_FILTERS) === "ok");
    run.staticPass.set(staticKey, eligible);
  }
  const tree = buildTree(eligible, group.labels, "", { serviceId, demand, threshold: run.threshold, count: tasks.length });
  let i = 0;
  for (; i < tasks.length; i++) {
    const node = take(tree, demand);
    if (!node) break;
    reserve(demand, node);
    commit(tree);
    run.assignments.push({ taskId: tasks[i].id, nodeId: node.node.id });
  }
  if (i < tasks.length) {
    // Every remaining task of the service is identical and capacity only shrinks, so one
    // count over all nodes explains them all.
    const counts = countReasons(demand, run.states);
    const reason = explain(counts);
    for (; i < tasks.length; i++) run.unassigned.push({ taskId: tasks[i].id, reason, counts });
  }
}
