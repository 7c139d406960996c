// The orchestrator: compares one service's spec with its tasks and the nodes, and says what to
// create and what to stop. It never picks nodes (the scheduler does) and never replaces
// out-of-date tasks itself (the update planner paces that); it only keeps the count right.
//
// Identity: a replicated task belongs to a slot (1..), a global task to a node. At most one live
// task per identity, except the start-first overlap of an update: an old-version task may keep
// running next to a current-version task until the latter is RUNNING.
import { BinaryHeap } from "./binary-heap";
import { matchesConstraints, parseConstraints, type Constraint } from "./constraints";
import type { CreateReason, FollowUp, NewTask, OutdatedTask, Plan, StopReason, StopTask } from "./plan";
import { restartDecision } from "./restart-policy";
import { isLive, taskStateRank } from "./task-state";
import type { NodeInfo, ServiceSpec, Task } from "./types";

/** Inputs of `orchestrate` besides the spec and the observed world. */
export interface OrchestrateOptions {
  /** The clock, in epoch milliseconds. */
  readonly now: number;
  /** The service's id, stamped on new tasks; tasks of other services in the input are ignored. */
  readonly serviceId: string;
  /**
   * Older spec versions whose spec equals the current one (a rollback returns to one): their
   * tasks count as up to date, so a rollback does not replace tasks that never changed.
   */
  readonly equivalentVersions?: readonly number[];
  /**
   * Tasks of a current version that count as out of date all the same: those a rebalance moves
   * (`UpdateState.moving`). Their replacement may overlap them (start-first) as an update's does.
   */
  readonly outdatedTaskIds?: readonly string[];
}

interface NodeProblem {
  readonly reason: Extract<StopReason, "node-down" | "node-drained" | "node-gone">;
  readonly orphan: boolean;
  readonly message: string;
}

/** Why a task on this node must go: down or gone (orphaned, no agent will answer) or drained. */
export function nodeProblem(nodeId: string | undefined, nodesById: ReadonlyMap<string, NodeInfo>): NodeProblem | undefined {
  if (nodeId === undefined) return undefined;
  const node = nodesById.get(nodeId);
  if (!node) return { reason: "node-gone", orphan: true, message: `node ${nodeId} left the cluster` };
  if (node.status === "down") return { reason: "node-down", orphan: true, message: `node ${node.hostname} is down` };
  if (node.availability === "drain") {
    return { reason: "node-drained", orphan: false, message: `node ${node.hostname} is drained` };
  }
  return undefined;
}

class PlanBuilder {
  readonly create: NewTask[] = [];
  readonly stop: StopTask[] = [];
  readonly update: OutdatedTask[] = [];
  readonly followUps: FollowUp[] = [];

  private readonly equivalent: ReadonlySet<number>;
  private readonly outdated: ReadonlySet<string>;

  constructor(
    readonly spec: ServiceSpec,
    readonly version: number,
    readonly options: OrchestrateOptions,
    readonly nodesById: ReadonlyMap<string, NodeInfo>,
    readonly constraints: readonly Constraint[],
  ) {
    this.equivalent = new Set(options.equivalentVersions ?? []);
    this.outdated = new Set(options.outdatedTaskIds ?? []);
  }

  readonly isCurrent = (v: number): boolean => v === this.version || this.equivalent.has(v);
  /** A task runs the current spec, and no rebalance is moving it. */
  readonly isCurrentTask = (t: Task): boolean => this.isCurrent(t.specVersion) && !this.outdated.has(t.id);

  stopTask(t: Task, reason: StopReason, message: string, orphan = false): void {
    this.stop.push({ taskId: t.id, reason, message, orphan });
  }

  createTask(at: { slot?: number; nodeId?: string }, reason: CreateReason, message: string, replaces?: string): void {
    this.create.push({
      serviceId: this.options.serviceId,
      ...at,
      specVersion: this.version,
      state: "NEW",
      desiredState: "running",
      reason,
      message,
      ...(replaces !== undefined ? { replaces } : {}),
    });
  }

  plan(): Plan {
    return { create: this.create, stop: this.stop, update: this.update, followUps: this.followUps };
  }
}

/** Prefers the more advanced task, then the newer one; ids break ties so the choice is stable. */
function better(a: Task, b: Task): boolean {
  const ra = taskStateRank(a.state);
  const rb = taskStateRank(b.state);
  if (ra !== rb) return ra > rb;
  if (a.createdAt !== b.createdAt) return a.createdAt > b.createdAt;
  return a.id > b.id;
}

function best(tasks: readonly Task[]): Task | undefined {
  let b: Task | undefined;
  for (const t of tasks) if (!b || better(t, b)) b = t;
  return b;
}

/** The outcome for one slot or node after dropping lost tasks and duplicates. */
interface IdentityView {
  readonly tasks: readonly Task[];
  /** Live tasks kept: one, or an old and a current one during a start-first overlap. */
  readonly survivors: readonly Task[];
  /** Set when a live task was removed because of its node or constraints: replace it at once. */
  readonly lost?: { readonly task: Task; readonly message: string };
}

/**
 * Stops live tasks that are lost (bad node, broken constraint) or duplicated, and returns what
 * remains. `violates` says whether a healthy-node task breaks the placement constraints.
 */
function resolveIdentity(b: PlanBuilder, tasks: readonly Task[], violates: (t: Task, node: NodeInfo) => boolean): IdentityView {
  const healthy: Task[] = [];
  let lost: IdentityView["lost"];
  for (const t of tasks) {
    if (!isLive(t)) continue;
    const problem = nodeProblem(t.nodeId, b.nodesById);
    const node = t.nodeId !== undefined ? b.nodesById.get(t.nodeId) : undefined;
    if (problem) {
      b.stopTask(t, problem.reason, problem.message, problem.orphan);
      lost ??= { task: t, message: `replaces ${t.id}: ${problem.message}` };
    } else if (node && violates(t, node)) {
      b.stopTask(t, "constraints", `node ${node.hostname} no longer satisfies the placement constraints`);
      lost ??= { task: t, message: `replaces ${t.id}: constraints no longer met on ${node.hostname}` };
    } else {
      healthy.push(t);
    }
  }
  const current = healthy.filter((t) => b.isCurrentTask(t));
  const old = healthy.filter((t) => !b.isCurrentTask(t));
  const keepCurrent = best(current);
  const keepOld = best(old);
  for (const t of healthy) {
    if (t === keepCurrent || t === keepOld) continue;
    const kept = b.isCurrentTask(t) ? keepCurrent : keepOld;
    b.stopTask(t, "duplicate", `duplicate of ${kept?.id}`);
  }
  const survivors: Task[] = [];
  if (keepOld && keepCurrent && keepCurrent.state === "RUNNING") {
    b.stopTask(keepOld, "superseded", `replaced by ${keepCurrent.id}`);
  } else if (keepOld) {
    survivors.push(keepOld);
  }
  if (keepCurrent) survivors.push(keepCurrent);
  return { tasks, survivors, ...(lost ? { lost } : {}) };
}

/** Records the outdated survivor, or creates/delays/forgoes a task for an identity left empty. */
function settleIdentity(b: PlanBuilder, view: IdentityView, at: { slot?: number; nodeId?: string }, freshReason: CreateReason): void {
  const where = at.slot !== undefined ? `slot ${at.slot}` : `node ${at.nodeId}`;
  if (view.survivors.length > 0) {
    if (!view.survivors.some((t) => b.isCurrentTask(t))) {
      const t = view.survivors[0];
      b.update.push({ taskId: t.id, ...at, specVersion: t.specVersion });
    }
    return;
  }
  if (view.lost) {
    b.createTask(at, "reschedule", view.lost.message, view.lost.task.id);
    return;
  }
  const d = restartDecision(b.spec.restartPolicy, view.tasks, b.isCurrent, b.options.now);
  if (d.kind === "now") b.createTask(at, d.restart ? "restart" : freshReason, d.message);
  else if (d.kind === "later") b.followUps.push({ atMs: d.atMs, reason: `${where}: ${d.message}` });
}

function groupBy<K>(tasks: readonly Task[], key: (t: Task) => K): Map<K, Task[]> {
  const m = new Map<K, Task[]>();
  for (const t of tasks) {
    const k = key(t);
    const list = m.get(k);
    if (list) list.push(t);
    else m.set(k, [t]);
  }
  return m;
}

interface SlotView extends IdentityView {
  readonly slot: number;
}

/**
 * Chooses the slots to remove when there are more than wanted: slots without a live task first,
 * then slots whose task is not running yet, then running ones taken from the nodes that run the
 * most of this service; among equals, the highest slot number.
 */
function chooseSlotsToRemove(slots: readonly SlotView[], count: number): SlotView[] {
  const byHighest = (a: SlotView, c: SlotView): number => c.slot - a.slot;
  const empty = slots.filter((s) => s.survivors.length === 0).sort(byHighest);
  const running = (s: SlotView): Task | undefined => s.survivors.find((t) => t.state === "RUNNING");
  const starting = slots.filter((s) => s.survivors.length > 0 && !running(s)).sort(byHighest);
  const chosen = [...empty, ...starting].slice(0, count);
  if (chosen.length === count) return chosen;

  const perNode = new Map<string, { node: string; slots: SlotView[] }>();
  for (const s of slots) {
    const r = running(s);
    if (!r) continue;
    const key = r.nodeId ?? "";
    const entry = perNode.get(key) ?? { node: key, slots: [] };
    entry.slots.push(s);
    perNode.set(key, entry);
  }
  for (const e of perNode.values()) e.slots.sort((a, c) => a.slot - c.slot);
  // Most slots first; among nodes with as many, the one holding the highest slot.
  const heap = new BinaryHeap<{ node: string; slots: SlotView[] }>(
    (a, c) =>
      a.slots.length !== c.slots.length
        ? a.slots.length > c.slots.length
        : a.slots[a.slots.length - 1].slot > c.slots[c.slots.length - 1].slot,
    [...perNode.values()],
  );
  while (chosen.length < count && heap.size > 0) {
    const top = heap.peek() as { node: string; slots: SlotView[] };
    chosen.push(top.slots.pop() as SlotView);
    if (top.slots.length === 0) heap.pop();
    else heap.updateTop();
  }
  return chosen;
}

function orchestrateReplicated(b: PlanBuilder, tasks: readonly Task[], replicas: number): void {
  const violates = (t: Task, node: NodeInfo): boolean => b.isCurrent(t.specVersion) && !matchesConstraints(node, b.constraints);
  const withSlot: Task[] = [];
  for (const t of tasks) {
    if (t.slot !== undefined && Number.isInteger(t.slot) && t.slot >= 1) withSlot.push(t);
    else if (isLive(t)) b.stopTask(t, "mode-changed", "task has no slot: the service is replicated now");
  }
  const views: SlotView[] = [];
  const bySlot = groupBy(withSlot, (t) => t.slot as number);
  for (const slot of [...bySlot.keys()].sort((x, y) => x - y)) {
    const slotTasks = bySlot.get(slot) as Task[];
    const view = resolveIdentity(b, slotTasks, violates);
    // A slot exists while some task of it is still wanted running: live, lost just now, or
    // exited on its own (awaiting a restart, or done for good under restart condition none).
    if (view.survivors.length > 0 || view.lost || slotTasks.some((t) => t.desiredState === "running")) {
      views.push({ ...view, slot });
    }
  }

  const removed = new Set(views.length > replicas ? chooseSlotsToRemove(views, views.length - replicas) : []);
  for (const s of removed) {
    for (const t of s.survivors) b.stopTask(t, "scale-down", `scaled down to ${replicas}`);
    // Dead tasks still marked desired-running would keep the slot alive; retire them with it.
    for (const t of s.tasks) {
      if (t.desiredState === "running" && !isLive(t)) b.stopTask(t, "scale-down", `slot ${s.slot} removed`);
    }
  }
  for (const s of views) if (!removed.has(s)) settleIdentity(b, s, { slot: s.slot }, "scale-up");

  const used = new Set(views.map((s) => s.slot));
  let missing = replicas - views.length;
  for (let slot = 1; missing > 0; slot++) {
    if (used.has(slot)) continue;
    b.createTask({ slot }, "scale-up", `scaled up to ${replicas}`);
    missing--;
  }
}

function orchestrateGlobal(b: PlanBuilder, tasks: readonly Task[], nodes: readonly NodeInfo[]): void {
  // Constraints decide which nodes a global service covers at all, so a task on a node that
  // stopped matching goes whatever its version (replicated tasks wait for the update instead).
  const violates = (_t: Task, node: NodeInfo): boolean => !matchesConstraints(node, b.constraints);
  const onNode: Task[] = [];
  for (const t of tasks) {
    if (t.nodeId !== undefined && t.slot === undefined) onNode.push(t);
    else if (isLive(t)) b.stopTask(t, "mode-changed", "task is not bound to a node: the service is global now");
  }
  const byNode = groupBy(onNode, (t) => t.nodeId as string);
  const ids = [...new Set([...nodes.map((n) => n.id), ...byNode.keys()])];
  for (const nodeId of ids) {
    const nodeTasks = byNode.get(nodeId) ?? [];
    const view = resolveIdentity(b, nodeTasks, violates);
    const node = b.nodesById.get(nodeId);
    const eligible =
      node !== undefined && node.status === "ready" && node.availability === "active" && matchesConstraints(node, b.constraints);
    // Paused and unknown nodes keep what they run but get nothing new; a lost task is not
    // replaced, since its node is exactly where the replacement would have to go.
    if (view.survivors.length > 0) settleIdentity(b, view, { nodeId }, "new-node");
    else if (eligible) settleIdentity(b, { tasks: view.tasks, survivors: [] }, { nodeId }, "new-node");
  }
}

/**
 * Decides what one service needs: tasks to create (for the scheduler to place), tasks to stop,
 * live tasks running an old spec (for the update planner), and when to look again.
 *
 * Replicated: slots 1..replicas, each with one live task; scale-down removes the slots chosen by
 * `chooseSlotsToRemove`; scale-up fills the lowest free slot numbers. Global: one live task per
 * node that is ready, active and matches the constraints. In both, tasks on down, drained or
 * vanished nodes are stopped (orphaned if the node cannot answer) and replaced immediately —
 * losing a node is not the task's failure, so the restart policy does not apply to it. A task
 * that exited on its own is replaced as the restart policy allows, possibly later (`followUps`).
 *
 * `serviceVersion` is the version new tasks are stamped with and live tasks are compared to:
 * bump it only when `affectsTasks(prev, next)`, or scaling would roll every task.
 *
 * Throws InvalidError if the spec's constraints do not parse (specs are validated when written).
 */
export function orchestrate(
  spec: ServiceSpec,
  serviceVersion: number,
  tasks: readonly Task[],
  nodes: readonly NodeInfo[],
  options: OrchestrateOptions,
): Plan {
  const nodesById = new Map(nodes.map((n) => [n.id, n]));
  const b = new PlanBuilder(spec, serviceVersion, options, nodesById, parseConstraints(spec.placement.constraints));
  const mine = tasks.filter((t) => t.serviceId === options.serviceId);
  if (spec.mode.kind === "replicated") orchestrateReplicated(b, mine, spec.mode.replicas);
  else orchestrateGlobal(b, mine, nodes);
  return b.plan();
}
