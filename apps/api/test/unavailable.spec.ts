// The 503 while only a Postgres standby answers names that, not just "unavailable".
import { describe, expect, it } from "vitest";
import { connectionFailure, postgresUnavailable } from "../src/common/unavailable";
import { NoPrimaryError } from "../src/database/pg-failover";

describe("Postgres with no writable primary", () => {
  const noPrimary = new NoPrimaryError("Postgres has no writable primary: 127.0.0.1:1: ECONNREFUSED; 127.0.0.1:2 is a read-only standby");

  it("is a Postgres failure, directly or wrapped as Prisma wraps it", () => {
    expect(connectionFailure(noPrimary)).toBe("postgres");
    expect(connectionFailure(new Error("adapter error", { cause: noPrimary }))).toBe("postgres");
    expect(connectionFailure(Object.assign(new Error("cannot execute INSERT in a read-only transaction"), { code: "25006" }))).toBe(
      "postgres",
    );
  });

  it("answers a write and a read with what happened", () => {
    expect(postgresUnavailable("POST", noPrimary).message).toBe(
      "Postgres has no writable primary (only a read-only standby answers; a failover may be under way): nothing was changed",
    );
    expect(postgresUnavailable("GET", noPrimary).message).toMatch(/no writable primary .*: try again when it is back$/);
    expect(postgresUnavailable("POST", new Error("connection terminated")).message).toBe("Postgres is unavailable: nothing was changed");
  });
});
