// The listings' per-service task counts are kept by triggers on Task (migration
// 20261207054803_service_task_counts_triggers), not counted at each listing. They must equal a
// count of the tasks after any statement: every state into every other, for both desired states,
// inserts, deletes, a service's removal (its tasks cascade), a truncate, and many statements at
// once across services in every order.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import pg from "pg";
import { ACTIVE_TASK_STATES, TASK_STATES } from "@flotilla/core";
import { createTestDatabase, type TestDatabase } from "../support/database";

const DESIRED = ["RUNNING", "SHUTDOWN"] as const;

describe("ServiceTaskCounts", () => {
  let db: TestDatabase;
  let sql: pg.Pool;
  beforeAll(async () => {
    db = await createTestDatabase();
    sql = new pg.Pool({ connectionString: db.url, max: 12 });
  });
  afterAll(async () => {
    await sql?.end();
    await db?.drop();
  });

  /** The counts as the triggers kept them, and as a count of the tasks says (core's definition). */
  const both = async () => {
    const kept = (
      await sql.query<{ id: string; live: number; running: number }>(
        `SELECT "serviceId"::text AS id, live, running FROM "ServiceTaskCounts"`,
      )
    ).rows;
    const tasks = (
      await sql.query<{ id: string; state: string; desired: string }>(
        `SELECT "serviceId"::text AS id, state::text AS state, "desiredState"::text AS desired FROM "Task"`,
      )
    ).rows;
    const counted = new Map<string, { live: number; running: number }>();
    for (const t of tasks) {
      const c = counted.get(t.id) ?? { live: 0, running: 0 };
      const live = t.desired === "RUNNING" && (ACTIVE_TASK_STATES as readonly string[]).includes(t.state);
      counted.set(t.id, { live: c.live + (live ? 1 : 0), running: c.running + (live && t.state === "RUNNING" ? 1 : 0) });
    }
    const nonZero = (m: Iterable<[string, { live: number; running: number }]>) =>
      Object.fromEntries([...m].filter(([, c]) => c.live !== 0 || c.running !== 0).sort(([a], [b]) => (a < b ? -1 : 1)));
    return { kept: nonZero(kept.map((r) => [r.id, { live: r.live, running: r.running }])), counted: nonZero(counted) };
  };
  const service = async (name: string) =>
    (
      await sql.query<{ id: string }>(
        `INSERT INTO "Service" (id, name, spec, "updatedAt") VALUES (gen_random_uuid(), $1, '{}', now()) RETURNING id::text AS id`,
        [name],
      )
    ).rows[0]!.id;
  const insertTasks = (serviceId: string, states: readonly string[], desired: string) =>
    sql.query(
      `INSERT INTO "Task" (id, "serviceId", slot, "specVersion", state, "desiredState", "updatedAt")
       SELECT gen_random_uuid(), $1::uuid, n, 1, s::"TaskState", $3::"DesiredTaskState", now() FROM unnest($2::text[]) WITH ORDINALITY AS v(s, n)`,
      [serviceId, states, desired],
    );

  it("equals a count of the tasks after every state change, for both desired states", async () => {
    const a = await service("counts-a");
    const b = await service("counts-b");
    for (const desired of DESIRED) await insertTasks(a, TASK_STATES, desired);
    await insertTasks(b, ["RUNNING", "RUNNING", "PENDING"], "RUNNING");
    expect((await both()).kept).toEqual((await both()).counted);
    expect((await both()).kept[a]).toEqual({ live: ACTIVE_TASK_STATES.length, running: 1 });
    // Every task of `a` through every state, one statement per state, both services at once.
    for (const to of TASK_STATES) {
      await sql.query(`UPDATE "Task" SET state = $1::"TaskState" WHERE "serviceId" = ANY($2::uuid[])`, [to, [a, b]]);
      const { kept, counted } = await both();
      expect(kept, `after every task moved to ${to}`).toEqual(counted);
    }
    for (const desired of DESIRED) {
      await sql.query(`UPDATE "Task" SET state = 'RUNNING', "desiredState" = $1::"DesiredTaskState" WHERE "serviceId" = $2::uuid`, [
        desired,
        a,
      ]);
      const { kept, counted } = await both();
      expect(kept).toEqual(counted);
    }
    // An update that changes no count touches no counts row.
    await sql.query(`UPDATE "Task" SET "missingReports" = "missingReports" + 1`);
    await sql.query(`DELETE FROM "Task" WHERE "serviceId" = $1::uuid AND slot <= 3`, [b]);
    const { kept, counted } = await both();
    expect(kept).toEqual(counted);
  });

  it("drops a removed service's counts with it, and starts over after a truncate", async () => {
    const c = await service("counts-c");
    await insertTasks(c, ["RUNNING", "STARTING"], "RUNNING");
    await sql.query(`DELETE FROM "Service" WHERE id = $1::uuid`, [c]);
    expect((await sql.query(`SELECT 1 FROM "ServiceTaskCounts" WHERE "serviceId" = $1::uuid`, [c])).rowCount).toBe(0);
    await sql.query(`TRUNCATE "Task" CASCADE`);
    expect(await both()).toEqual({ kept: {}, counted: {} });
  });

  it("stays exact, without deadlocks, under many statements at once across services", async () => {
    const ids = await Promise.all(["d1", "d2", "d3", "d4"].map((n) => service(`counts-${n}`)));
    for (const id of ids)
      await insertTasks(
        id,
        Array.from({ length: 50 }, () => "ASSIGNED"),
        "RUNNING",
      );
    const states = ["ACCEPTED", "STARTING", "RUNNING", "FAILED", "ASSIGNED"];
    // Three rounds of 50 statements at once, each moving its own slot's tasks (no two touch the
    // same task) of a random set of services, named in a random order: they meet only on the
    // services' counts rows, which every statement locks in one order.
    const work = Array.from({ length: 150 }, (_, i) =>
      sql.query(`UPDATE "Task" SET state = $1::"TaskState" WHERE "serviceId" = ANY($2::uuid[]) AND slot = $3`, [
        states[i % states.length],
        ids.filter(() => Math.random() < 0.7).sort(() => Math.random() - 0.5),
        (i % 50) + 1,
      ]),
    );
    await Promise.all(work);
    const { kept, counted } = await both();
    expect(kept).toEqual(counted);
  });
});
