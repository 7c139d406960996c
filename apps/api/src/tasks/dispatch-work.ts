// Which nodes have dispatch work: tasks to start there (assigned, or accepted and never started
// by a dispatcher that has since gone quiet) or tasks to stop. Read by a reconcile for its
// service and by the sweep for all of them.
import { STALE_CLAIM_MS, STOPPABLE_TASK_STATES } from "@flotilla/core";
import { desiredStateSql, nodeStatusSql, taskStateSql, utc, type SqlRunner } from "../database/sql";
import type { NodeDispatch } from "../queues/queues.service";

const RUNNING = desiredStateSql("running");
const START = `(t."desiredState" = ${RUNNING} AND t.state = ${taskStateSql("ASSIGNED")})
  OR (t."desiredState" = ${RUNNING} AND t.state = ${taskStateSql("ACCEPTED")} AND t."containerId" IS NULL AND t."updatedAt" < $1::timestamp(3))`;
const STOP = `t."desiredState" = ${desiredStateSql("shutdown")} AND t.state IN (${STOPPABLE_TASK_STATES.map(taskStateSql).join(", ")})`;

/**
 * The nodes with dispatch work (of one service, or of all), ready nodes only: a down node's
 * tasks are the orchestrator's to replace, not dispatch's to reach. The tasks are grouped by
 * node first and each group's node is then looked up by its key. Joined to "Node" instead, the
 * planner, working from statistics taken before the tasks changed state (autovacuum analyzes at
 * most once a minute), once expected 7 rows where there were 135,000 and compared each with
 * every ready node: 34.8 s for one sweep of a 5,000-node cluster.
 */
export function nodesWithDispatchWork(sql: SqlRunner, now: number, serviceId?: string): Promise<NodeDispatch[]> {
  return sql.query<NodeDispatch>(
    `SELECT w."nodeId"::text AS "nodeId", w.start, w.stop FROM (
       SELECT t."nodeId", bool_or(${START}) AS start, bool_or(${STOP}) AS stop FROM "Task" t
       WHERE t."nodeId" IS NOT NULL ${serviceId === undefined ? "" : `AND t."serviceId" = $2::uuid`} AND ((${START}) OR (${STOP}))
       GROUP BY t."nodeId") w
     WHERE (SELECT n.status FROM "Node" n WHERE n.id = w."nodeId") = ${nodeStatusSql("ready")}`,
    serviceId === undefined ? [utc(now - STALE_CLAIM_MS)] : [utc(now - STALE_CLAIM_MS), serviceId],
  );
}
