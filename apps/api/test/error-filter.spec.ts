import { describe, expect, it } from "vitest";
import { ConflictError, InvalidError, NotFoundError, NotSupportedError, UnavailableError } from "@flotilla/core";
import { BadRequestException, UnauthorizedException } from "@nestjs/common";
import { DomainExceptionFilter } from "../src/common/domain-exception.filter";
import { connectionFailure } from "../src/common/unavailable";

describe("DomainExceptionFilter", () => {
  const filter = new DomainExceptionFilter();
  it.each([
    [new NotFoundError("service", "web"), 404, "not_found", "service not found: web"],
    [new ConflictError("name taken"), 409, "conflict", "name taken"],
    [new InvalidError("invalid replicas: must be ≥ 0", { field: "replicas" }), 400, "invalid", "invalid replicas: must be ≥ 0"],
    [new NotSupportedError("generic driver cannot stop a host"), 501, "not_supported", "generic driver cannot stop a host"],
    [new UnavailableError("agent unreachable"), 503, "unavailable", "agent unreachable"],
    [new UnauthorizedException("invalid API token"), 401, "unauthorized", "invalid API token"],
    [new BadRequestException("nope"), 400, "invalid", "nope"],
    [new Error("secret internals"), 500, "internal", "internal error; see the API logs"],
  ])("maps %s", (err, status, error, message) => {
    const [s, body] = filter.toResponse(err);
    expect(s).toBe(status);
    expect(body).toMatchObject({ error, message });
    expect(body.details).toBeTypeOf("object");
  });

  it("keeps the field name of invalid input", () => {
    expect(filter.toResponse(new InvalidError("bad", { field: "replicas" }))[1].details).toEqual({ field: "replicas" });
  });
});

describe("connectionFailure", () => {
  it("tells Postgres's own signs from a refused connection to anything and from other errors", () => {
    expect(connectionFailure(Object.assign(new Error("terminating connection due to administrator command"), { code: "57P01" }))).toBe(
      "postgres",
    );
    expect(connectionFailure(new Error("wrapped", { cause: Object.assign(new Error("x"), { code: "08006" }) }))).toBe("postgres");
    expect(connectionFailure(new Error("Connection terminated unexpectedly"))).toBe("postgres");
    expect(connectionFailure(Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:5432"), { code: "ECONNREFUSED" }))).toBe("network");
    expect(connectionFailure(new Error("secret internals"))).toBeNull();
  });
});
