// A ready node's beat, the steady state of a heartbeat: batched (HeartbeatsService's Batcher),
// one statement per batch marks the nodes alive, reads the active tasks of those whose reports are
// to be folded, and reads what each node's engine URL is decided from. At 5,000 nodes while
// Postgres is busy each round trip costs 60-300 ms at p99, so the machines are read in the same
// statement rather than before it; the rare URL change is a second one.
import { engineUrlFor } from "@flotilla/core";
import { AGENT_PORT } from "@flotilla/provision";
import { nodeStatusSql, utc, type SqlRunner } from "../database/sql";
import { EVENT_RETURNING, eventsFrom, type EventRow } from "../events/event-rows";
import type { FlotillaEvent } from "../events/events.service";
import { nodeTasksLateral, TASK_COLUMNS } from "../database/task-rows";
import type { Node as NodeRow, Task as TaskRow } from "../generated/prisma/client";
import { ACTIVE_STATES } from "../services/mapping";
import type { HeartbeatBody, Reporter } from "./heartbeat-body";

/** What heartbeat handling needs of a node. */
export type NodeRef = Pick<NodeRow, "id" | "hostname">;
/** A ready node marked alive, and its active tasks when they were asked for. */
export interface Touched {
  node: NodeRef;
  active?: TaskRow[];
}
/** One beat as the touch batch takes it. */
export interface TouchItem {
  hb: HeartbeatBody;
  withTasks: boolean;
  reporter: Reporter;
  /** The period the reply tells the agent, recorded on its node. */
  periodMs: number;
}

/**
 * One statement for a batch of beats from ready nodes: marks them alive, reads the active
 * tasks of those whose reports are to be folded, and reads what the engine URL is decided from
 * (the node's machine, the URL on record). Answers null for a node that is not READY (or
 * unknown): that beat takes the registration path. A second statement runs only for nodes
 * whose engine URL changes (recordEngineUrls): the steady state is one round trip.
 */
export async function touchReady(
  sql: SqlRunner,
  items: readonly TouchItem[],
  now: number,
  publish: (evs: FlotillaEvent[]) => Promise<void>,
): Promise<(Touched | null)[]> {
  const rows = await retryDeadlock(() =>
    sql.query<
      TaskRow & { node: string; nodeHostname: string; nodeEngineUrl: string | null; hasMachine: boolean; machineIp: string | null }
    >(
      `WITH v AS (
           SELECT v.*, m.name IS NOT NULL AS "hasMachine", m.ip AS "machineIp"
           FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::boolean[], $7::int[]) AS v(hostname, cpu, mem, fold, period)
           LEFT JOIN "Machine" m ON m.name = v.hostname),
         n AS (
           UPDATE "Node" AS node SET "cpuNanos" = v.cpu, "memoryBytes" = v.mem,
             "lastHeartbeatAt" = $5::timestamp(3), "updatedAt" = $5::timestamp(3), "heartbeatMs" = v.period
           FROM v WHERE node.hostname = v.hostname AND node.status = ${nodeStatusSql("ready")}
           RETURNING node.id, node.hostname, node."engineUrl", v.fold, v."hasMachine", v."machineIp")
         SELECT n.id::text AS node, n.hostname AS "nodeHostname", n."engineUrl" AS "nodeEngineUrl", n."hasMachine", n."machineIp",
           ${TASK_COLUMNS}
         FROM n LEFT JOIN LATERAL (${nodeTasksLateral("$6", "n.fold")}) t ON true`,
      [
        items.map((i) => i.hb.hostname),
        items.map((i) => i.hb.resources.nanoCpus),
        items.map((i) => i.hb.resources.memoryBytes),
        items.map((i) => i.withTasks),
        utc(now),
        [...ACTIVE_STATES],
        items.map((i) => i.periodMs),
      ],
    ),
  );
  // A LEFT JOIN: a node without tasks (or not asked for them) comes back as one null-task row.
  const byHost = new Map<string, Touched & { engine: { current: string | null; machine?: { ip: string | null } } }>();
  for (const { node, nodeHostname, nodeEngineUrl, hasMachine, machineIp, ...task } of rows) {
    let t = byHost.get(nodeHostname);
    if (!t)
      byHost.set(
        nodeHostname,
        (t = {
          node: { id: node, hostname: nodeHostname },
          active: [],
          engine: { current: nodeEngineUrl, ...(hasMachine ? { machine: { ip: machineIp } } : {}) },
        }),
      );
    if (task.id !== null) t.active!.push(task);
  }
  const changed: { id: string; url: string }[] = [];
  for (const i of items) {
    const t = byHost.get(i.hb.hostname);
    if (!t) continue;
    const url = engineUrlFor({
      ...t.engine,
      reported: i.hb.engineUrl,
      reporterIsAdmin: i.reporter.admin,
      agentPort: AGENT_PORT,
    });
    // null keeps the URL on record.
    if (url !== null && url !== t.engine.current) changed.push({ id: t.node.id, url });
  }
  if (changed.length) await publish(await recordEngineUrls(sql, changed, now));
  return items.map((i) => {
    const t = byHost.get(i.hb.hostname);
    return t ? { node: t.node, active: t.active } : null;
  });
}

/**
 * Records new engine URLs: the first beat after a machine's address changed, or an admin's
 * heartbeat naming a new one for a node without a machine. Each with a node `address` event in
 * the same statement: the tables agents poll name nodes by that address, and learn of changes
 * from events alone while the event stream delivers.
 */
async function recordEngineUrls(sql: SqlRunner, changed: readonly { id: string; url: string }[], now: number): Promise<FlotillaEvent[]> {
  const rows = await retryDeadlock(() =>
    sql.query<EventRow>(
      `WITH moved AS (
         UPDATE "Node" AS node SET "engineUrl" = v.url
         FROM unnest($1::uuid[], $2::text[]) AS v(id, url) WHERE node.id = v.id AND node."engineUrl" IS DISTINCT FROM v.url
         RETURNING node.id, node.hostname, node."engineUrl")
       INSERT INTO "Event" (at, kind, "subjectId", action, data)
       SELECT $3::timestamp(3), 'node', m.id::text, 'address', jsonb_build_object('hostname', m.hostname, 'engineUrl', m."engineUrl")
       FROM moved m ORDER BY m.hostname
       ${EVENT_RETURNING}`,
      [changed.map((c) => c.id), changed.map((c) => c.url), utc(now)],
    ),
  );
  return eventsFrom(rows);
}

/** Runs `fn`, once more if Postgres chose it as a deadlock's victim (node rows touched in bulk). */
async function retryDeadlock<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    if ((e as { code?: string }).code !== "40P01") throw e;
    return fn();
  }
}
