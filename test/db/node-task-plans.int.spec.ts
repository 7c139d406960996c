// The statements that read a few nodes' tasks (a batch of heartbeats, a dispatch batch) must look
// them up through the "nodeId" index even before Postgres has statistics of "Task": autovacuum
// analyzes a table at most once a minute, and a cluster's tasks can go from none to 150,000
// within that. With a plain join the planner guessed hundreds of tasks per node and scanned the
// whole table for every heartbeat batch. Here "Task" is filled with autovacuum off for it, so it
// is never analyzed, and each statement's plan is read with EXPLAIN.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import pg from "pg";
import type { PrismaService } from "../../apps/api/src/database/prisma.service";
import type { SqlRunner } from "../../apps/api/src/database/sql";
import { DispatchBatches } from "../../apps/api/src/dispatch/dispatch-batches";
import type { EventsService } from "../../apps/api/src/events/events.service";
import { touchReady, type TouchItem } from "../../apps/api/src/heartbeats/ready-touch";
import { nodesWithDispatchWork } from "../../apps/api/src/tasks/dispatch-work";
import type { TasksRepository } from "../../apps/api/src/tasks/tasks.repository";
import { createTestDatabase, type TestDatabase } from "../support/database";

const NODES = 2000;
const TASKS_PER_NODE = 20;

interface PlanNode {
  "Node Type": string;
  "Relation Name"?: string;
  Plans?: PlanNode[];
}

/** The plan's nodes, the root first. */
function planNodes(node: PlanNode): PlanNode[] {
  return [node, ...(node.Plans ?? []).flatMap(planNodes)];
}

/** Every plan node that reads `relation`, by type. */
function readsOf(plan: PlanNode, relation: string): string[] {
  return planNodes(plan)
    .filter((n) => n["Relation Name"] === relation)
    .map((n) => n["Node Type"]);
}

/** Every join in the plan, by type. */
function joinsIn(plan: PlanNode): string[] {
  return planNodes(plan)
    .map((n) => n["Node Type"])
    .filter((type) => ["Nested Loop", "Hash Join", "Merge Join"].includes(type));
}

/** Every relation the plan reads with a sequential scan. */
function seqScans(plan: PlanNode): string[] {
  return planNodes(plan)
    .filter((n) => n["Node Type"] === "Seq Scan" && n["Relation Name"])
    .map((n) => n["Relation Name"]!);
}

describe("reading a few nodes' tasks before Postgres has statistics of them", () => {
  let db: TestDatabase;
  let sql: pg.Pool;
  const hostnames = Array.from({ length: NODES }, (_, i) => `plan-node-${i}`);

  beforeAll(async () => {
    db = await createTestDatabase();
    sql = new pg.Pool({ connectionString: db.url, max: 2 });
    await sql.query(`ALTER TABLE "Task" SET (autovacuum_enabled = false)`);
    await sql.query(
      `INSERT INTO "Node" (id, hostname, status, "updatedAt")
       SELECT gen_random_uuid(), h, 'READY', now() FROM unnest($1::text[]) AS h`,
      [hostnames],
    );
    const service = (
      await sql.query<{ id: string }>(
        `INSERT INTO "Service" (id, name, spec, "updatedAt") VALUES (gen_random_uuid(), 'web', '{}', now()) RETURNING id`,
      )
    ).rows[0]!.id;
    await sql.query(
      `INSERT INTO "Task" (id, "serviceId", slot, "nodeId", "specVersion", state, "desiredState", "updatedAt")
       SELECT gen_random_uuid(), $1::uuid, s, n.id, 1, 'RUNNING', 'RUNNING', now()
       FROM "Node" n, generate_series(1, $2::int) AS s`,
      [service, TASKS_PER_NODE],
    );
    // The nodes registered before their tasks were placed, so autovacuum has analyzed "Node" by
    // then; "Task" is what has no statistics yet.
    await sql.query(`ANALYZE "Node"`);
    const { rows } = await sql.query<{ analyzed: boolean }>(
      `SELECT last_analyze IS NOT NULL OR last_autoanalyze IS NOT NULL AS analyzed FROM pg_stat_user_tables WHERE relname = 'Task'`,
    );
    expect(rows[0]!.analyzed).toBe(false);
  });
  afterAll(async () => {
    await sql?.end();
    await db?.drop();
  });

  /** The plan of `text` with `values`, as EXPLAIN gives it (nothing is run). */
  const plan = async (text: string, values: readonly unknown[]): Promise<PlanNode> => {
    const { rows } = await sql.query<{ "QUERY PLAN": { Plan: PlanNode }[] }>(`EXPLAIN (FORMAT JSON) ${text}`, [...values]);
    return rows[0]!["QUERY PLAN"][0]!.Plan;
  };

  /** A statement runner that explains each statement instead of running it, keeping the plans. */
  const explaining = (plans: PlanNode[]): SqlRunner => ({
    query: async <T>(text: string, values?: readonly unknown[]): Promise<T[]> => {
      plans.push(await plan(text, values ?? []));
      return [];
    },
  });

  it("a heartbeat batch's touch reads its nodes' tasks through the index", async () => {
    const plans: PlanNode[] = [];
    const items: TouchItem[] = hostnames.slice(0, 18).map((hostname) => ({
      hb: { hostname, engineUrl: "", resources: { nanoCpus: 1e9, memoryBytes: 2 ** 30 }, labels: {}, containers: [] },
      withTasks: true,
      reporter: { admin: false },
      periodMs: 5000,
    }));
    await touchReady(explaining(plans), items, Date.now(), async () => {});
    expect(plans).toHaveLength(1);
    expect(seqScans(plans[0]!)).not.toContain("Task");
  });

  it("a dispatch batch's read of its nodes reads their tasks through the index", async () => {
    const plans: PlanNode[] = [];
    // Only the read runs here: the other collaborators are not reached.
    const batches = new DispatchBatches(
      { sql: explaining(plans) } as unknown as PrismaService,
      undefined as unknown as TasksRepository,
      undefined as unknown as EventsService,
      { now: () => Date.now() },
    );
    const ids = (await sql.query<{ id: string }>(`SELECT id::text AS id FROM "Node" ORDER BY hostname LIMIT 18`)).rows.map((r) => r.id);
    expect(await Promise.all(ids.map((id) => batches.node(id)))).toEqual(ids.map(() => null));
    expect(plans.length).toBeGreaterThan(0);
    for (const p of plans) expect(seqScans(p)).not.toContain("Task");
  });

  it("the nodes with dispatch work are found by grouping tasks, then looking each node up by its key, on statistics gone stale", async () => {
    // Statistics taken while every task ran; then they are all assigned anew, as when a
    // cluster's tasks were placed within the minute before autovacuum came around.
    await sql.query(`ANALYZE "Task"`);
    await sql.query(`UPDATE "Task" SET state = 'ASSIGNED'`);
    const service = (await sql.query<{ id: string }>(`SELECT id::text AS id FROM "Service"`)).rows[0]!.id;
    for (const serviceId of [undefined, service]) {
      const plans: PlanNode[] = [];
      expect(await nodesWithDispatchWork(explaining(plans), Date.now(), serviceId)).toEqual([]);
      expect(plans).toHaveLength(1);
      // No join for the planner to get wrong: the old join of "Task" and "Node" ran as a nested
      // loop that compared 135,000 tasks with every ready node (34.8 s) when the statistics said 7.
      expect(joinsIn(plans[0]!)).toEqual([]);
      expect(new Set(readsOf(plans[0]!, "Node"))).toEqual(new Set(["Index Scan"]));
    }
  });
});
