// Rebalancing (`ctl service update --rebalance`, beyond swarm): after nodes join or come back,
// tasks stay where they are (moby#24103). A rebalance asks the scheduler where the service's
// tasks would go now, from scratch, and moves the difference: the tasks on nodes holding more
// than that placement gives them are replaced through the update planner (batches, order,
// health), and the scheduler places each replacement on the emptier nodes.
import { schedule, type SpecsByService } from "./scheduler";
import type { LiveCounts } from "./scheduler-filters";
import { isLive } from "./task-state";
import type { NodeInfo, ServiceSpec, Task } from "./types";
import type { UpdateState } from "./update-planner";

export interface RebalanceInput {
  readonly serviceId: string;
  /** The service's tasks (only live ones count). */
  readonly tasks: readonly Task[];
  readonly nodes: readonly NodeInfo[];
  /** Other services' live tasks per node. */
  readonly others: LiveCounts;
  readonly specs: SpecsByService;
  readonly now: number;
}

/**
 * The live tasks to move: on each node, those beyond the count a fresh placement of as many
 * tasks would give it (highest slots first). Empty when the spread already matches.
 */
export function rebalanceMoves(i: RebalanceInput): string[] {
  const live = i.tasks.filter((t) => t.serviceId === i.serviceId && isLive(t) && t.nodeId !== undefined);
  const fresh = live.map((_, k) => ({ id: `rebalance:${k}`, serviceId: i.serviceId }));
  // Without the service's own history: a recent failure on a node would rank it last for
  // every fresh task and empty it, where the point is the spread.
  const placed = schedule(fresh, i.nodes, [], i.specs, { now: i.now, liveCounts: i.others });
  const target = new Map<string, number>();
  for (const a of placed.assignments) target.set(a.nodeId, (target.get(a.nodeId) ?? 0) + 1);
  const byNode = new Map<string, Task[]>();
  for (const t of live) byNode.set(t.nodeId as string, [...(byNode.get(t.nodeId as string) ?? []), t]);
  const moves: string[] = [];
  for (const [nodeId, ts] of [...byNode].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    const surplus = ts.length - (target.get(nodeId) ?? 0);
    if (surplus <= 0) continue;
    const order = [...ts].sort((a, b) => (b.slot ?? 0) - (a.slot ?? 0) || (a.id < b.id ? -1 : 1));
    moves.push(...order.slice(0, surplus).map((t) => t.id));
  }
  return moves;
}

/** A rebalance's state with its tasks to move chosen, once; any other state as it is. */
export function withRebalanceMoves(update: UpdateState, i: RebalanceInput): UpdateState {
  if (!update.rebalance || update.moving !== undefined) return update;
  const moving = rebalanceMoves(i);
  return { ...update, moving, message: `rebalance: ${moving.length} task${moving.length === 1 ? "" : "s"} to move` };
}

/**
 * Whether a node that joined or came back starts a rebalance of this service: only replicated
 * services that opted in (`rebalancePolicy: auto`), and only when their last update finished.
 * Not while one moves tasks, nor when one is paused: a paused update waits for its operator,
 * and moving tasks then would start more of a spec that just failed.
 */
export function dueForAutoRebalance(spec: Pick<ServiceSpec, "mode" | "rebalancePolicy">, update: UpdateState | null): boolean {
  if (spec.rebalancePolicy !== "auto" || spec.mode.kind !== "replicated") return false;
  return update === null || update.status === "completed" || update.status === "rollback-completed";
}
