// Plain SQL on the pool Prisma runs on, for the paths a large cluster runs hundreds of times a
// second (heartbeats, dispatch, reconcile reads). Measured on this machine, a Prisma query costs
// 2-4× the CPU of the same statement through node-postgres, and the API's one event loop is
// what a 1,000-node cluster saturates first. Everything else keeps using Prisma.
import type { DesiredState, NodeStatus, TaskState } from "@flotilla/core";
import pg from "pg";

/** Runs one statement; rows come back as plain objects, in the shapes the SQL selects. */
export interface SqlRunner {
  query<T>(text: string, values?: readonly unknown[]): Promise<T[]>;
}

// Prisma's DateTime columns are `timestamp(3)` holding UTC wall-clock time. node-postgres would
// read them, and write Date parameters, in the process's local time zone: read them as UTC
// here, and pass times as `utc(date)` cast with `::timestamp(3)`.
const TIMESTAMP_OID = 1114;
const TYPES = {
  getTypeParser: ((oid: number, format?: "text" | "binary") =>
    oid === TIMESTAMP_OID
      ? (v: string) => new Date(`${v.replace(" ", "T")}Z`)
      : pg.types.getTypeParser(oid, format)) as typeof pg.types.getTypeParser,
};

/** A time as a `timestamp(3)` parameter holding UTC wall-clock time (Prisma's convention). */
export function utc(at: Date | number): string {
  return new Date(at).toISOString().slice(0, -1);
}

// State names in SQL come from core's types through these, so a renamed or mistyped state is a
// compile error rather than a query that silently matches nothing.
/** A task state as a literal of Postgres' "TaskState" enum. */
export const taskStateSql = (s: TaskState): string => `'${s}'::"TaskState"`;
/** A desired state (core's lower-case name) as a literal of the "DesiredTaskState" enum. */
export const desiredStateSql = (s: DesiredState): string => `'${s.toUpperCase()}'::"DesiredTaskState"`;
/** A node status (core's lower-case name) as a literal of the "NodeStatus" enum. */
export const nodeStatusSql = (s: NodeStatus): string => `'${s.toUpperCase()}'::"NodeStatus"`;

export class Sql implements SqlRunner {
  constructor(private readonly pool: pg.Pool) {}

  async query<T>(text: string, values: readonly unknown[] = []): Promise<T[]> {
    const r = await this.pool.query({ text, values: values as unknown[], types: TYPES });
    return r.rows as T[];
  }

  /** Runs `fn` in one transaction on one connection; rolls back if it throws. */
  async transaction<T>(fn: (tx: SqlRunner) => Promise<T>): Promise<T> {
    const client = await this.pool.connect();
    const tx: SqlRunner = {
      query: async <R>(text: string, values: readonly unknown[] = []) =>
        (await client.query({ text, values: values as unknown[], types: TYPES })).rows as R[],
    };
    let broken: Error | undefined;
    try {
      await client.query("BEGIN");
      const out = await fn(tx);
      await client.query("COMMIT");
      return out;
    } catch (e) {
      // A connection that cannot even roll back goes back to the pool as broken (closed).
      await client.query("ROLLBACK").catch((err: Error) => (broken = err));
      throw e;
    } finally {
      client.release(broken);
    }
  }
}
