// The token table locked by a test's own session, standing for a database too busy to answer:
// a check that waits on the lock made a lookup, one that answers while it is held did not.
import type pg from "pg";

/** Whether a session of this database other than `admin` waits for a lock (a token lookup held up by the test's lock). */
export async function sessionsWaitOnLock(admin: pg.Client): Promise<boolean> {
  const waiting = await admin.query(
    `SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()`,
  );
  return waiting.rowCount! > 0;
}

/** Runs `fn` with "ApiToken" locked by `admin`'s transaction (committed afterwards). */
export async function withTokenTableLocked<T>(admin: pg.Client, fn: () => Promise<T>): Promise<T> {
  await admin.query(`BEGIN; LOCK TABLE "ApiToken" IN ACCESS EXCLUSIVE MODE`);
  try {
    return await fn();
  } finally {
    await admin.query("COMMIT");
  }
}
