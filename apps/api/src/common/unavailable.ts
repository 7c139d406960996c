// Telling "a dependency is down" apart from a bug, for the 503s the API answers while Postgres
// or Redis is unreachable: the user learns what is down and what happened to the request.
import { UnavailableError } from "@flotilla/core";

// Postgres's own signs: the server shutting down or starting up (57P0x), connection exceptions
// (08xxx), Prisma's codes for the same, and node-postgres's messages.
// 25006: a write reached a read-only standby (a failover under way).
const PG_CODES = new Set(["57P01", "57P02", "57P03", "25006", "P1001", "P1002", "P1017", "P2024", "DatabaseNotReachable"]);
// What database/pg-failover.ts and Postgres say when only a standby answers.
const READ_ONLY = /has no writable primary|cannot execute \w+ in a read-only transaction/i;
const PG_MESSAGES =
  /has no writable primary|read-only transaction|connection terminated|timeout exceeded when trying to connect|can't reach database server|the database system is (starting up|shutting down|in recovery mode)|terminating connection due to administrator command|Client has encountered a connection error/i;
// A refused or cut connection could be to anything (an agent, Redis): Postgres only if it is down.
const NET_CODES = new Set(["ECONNREFUSED", "ECONNRESET", "ETIMEDOUT", "EPIPE", "EHOSTUNREACH"]);

/**
 * "postgres" when `e` (or what caused it) says Postgres could not be reached, "network" when it
 * is a refused or cut connection to something unnamed, null otherwise.
 */
export function connectionFailure(e: unknown): "postgres" | "network" | null {
  let network = false;
  for (let cur = e, depth = 0; cur && typeof cur === "object" && depth < 6; cur = (cur as { cause?: unknown }).cause, depth++) {
    for (const key of ["code", "originalCode", "kind"] as const) {
      const code = (cur as Record<string, unknown>)[key];
      if (typeof code !== "string") continue;
      if (PG_CODES.has(code) || /^08\d{3}$/.test(code)) return "postgres";
      if (NET_CODES.has(code)) network = true;
    }
    if (PG_MESSAGES.test(String((cur as { message?: unknown }).message ?? ""))) return "postgres";
  }
  return network ? "network" : null;
}

/** True when `e` (or what caused it) says only a read-only standby could be reached. */
export function onlyStandby(e: unknown): boolean {
  for (let cur = e, depth = 0; cur && typeof cur === "object" && depth < 6; cur = (cur as { cause?: unknown }).cause, depth++) {
    if (READ_ONLY.test(String((cur as { message?: unknown }).message ?? "")) || (cur as { code?: unknown }).code === "25006") return true;
  }
  return false;
}

/** The 503 for a request that failed because Postgres is down (or, given `cause`, only a standby answers). */
export function postgresUnavailable(method: string, cause?: unknown): UnavailableError {
  const reading = method === "GET" || method === "HEAD";
  const what = onlyStandby(cause)
    ? "Postgres has no writable primary (only a read-only standby answers; a failover may be under way)"
    : "Postgres is unavailable";
  return new UnavailableError(reading ? `${what}: try again when it is back` : `${what}: nothing was changed`, {
    dependency: "postgres",
  });
}

/** The 503 for a change Postgres took but Redis could not queue: the sweep rolls it out later. */
export function savedButRedisUnavailable(): UnavailableError {
  return new UnavailableError("Redis is unavailable: the change is saved and will roll out when it returns", {
    dependency: "redis",
    saved: true,
  });
}

/**
 * Awaits the queueing that follows a committed change: if Redis refuses it, the change stands
 * (the sweep rolls it out once Redis is back) and the caller is told so with a 503.
 */
export async function queuedAfterCommit(queueing: Promise<unknown>): Promise<void> {
  try {
    await queueing;
  } catch (e) {
    if (e instanceof UnavailableError && e.details.dependency === "redis") throw savedButRedisUnavailable();
    throw e;
  }
}
