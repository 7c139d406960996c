import { describe, expect, it } from "vitest";
import { parseDatabaseUrl, parseRedisUrl } from "../src/config/connection-urls";
import { loadConfig } from "../src/config/config";

describe("parseDatabaseUrl", () => {
  it("reads libpq's multi-host form with target_session_attrs", () => {
    const t = parseDatabaseUrl("postgresql://flo:p%40ss@10.0.0.1:5433,[::1],db3/flotilla?target_session_attrs=read-write&sslmode=disable");
    expect(t).toEqual({
      hosts: [
        { host: "10.0.0.1", port: 5433 },
        { host: "::1", port: 5432 },
        { host: "db3", port: 5432 },
      ],
      user: "flo",
      password: "p@ss",
      database: "flotilla",
      targetSessionAttrs: "read-write",
      firstHostUrl: "postgresql://flo:p%40ss@10.0.0.1:5433/flotilla?sslmode=disable",
    });
  });

  it("keeps a one-host URL as it was (any session)", () => {
    const t = parseDatabaseUrl("postgres://u@127.0.0.1:55432/db");
    expect(t.hosts).toEqual([{ host: "127.0.0.1", port: 55432 }]);
    expect(t.targetSessionAttrs).toBe("any");
    expect(t.password).toBeUndefined();
  });

  it.each([
    ["mysql://x/y", /must be a postgresql:\/\/ or postgres:\/\/ URL/],
    ["postgresql://u@h1:99999/db", /"h1:99999" is not host\[:port\]/],
    ["postgresql://u@h1,,h2/db", /"" is not host/],
    ["postgresql://u@h1/db?target_session_attrs=standby", /standby is not supported/],
  ])("refuses %s", (url, message) => {
    expect(() => parseDatabaseUrl(url)).toThrow(message);
  });
});

describe("parseRedisUrl", () => {
  it("reads Sentinels, the master name, and the password for both", () => {
    expect(parseRedisUrl("redis+sentinel://:secret@127.0.0.1:57421,127.0.0.1:57422,sent3/flotilla")).toEqual({
      kind: "sentinel",
      sentinels: [
        { host: "127.0.0.1", port: 57421 },
        { host: "127.0.0.1", port: 57422 },
        { host: "sent3", port: 26379 },
      ],
      name: "flotilla",
      username: undefined,
      password: "secret",
      sentinelPassword: "secret",
      db: 0,
    });
  });

  it("takes a db number and a separate Sentinel password", () => {
    const t = parseRedisUrl("redis+sentinel://app:pw@s1:1/m/3?sentinelPassword=spw");
    expect(t).toMatchObject({ kind: "sentinel", name: "m", db: 3, username: "app", password: "pw", sentinelPassword: "spw" });
  });

  it("passes a plain redis:// URL through", () => {
    expect(parseRedisUrl("redis://default:x@127.0.0.1:6379")).toEqual({ kind: "direct", url: "redis://default:x@127.0.0.1:6379" });
  });

  it.each([
    ["redis+sentinel://s1:1", /ends in \/masterName/],
    ["redis+sentinel://s1:1/m?foo=1", /unknown parameter foo/],
    ["nonsense", /must be a redis:\/\/ or rediss:\/\//],
  ])("refuses %s", (url, message) => {
    expect(() => parseRedisUrl(url)).toThrow(message);
  });
});

describe("loadConfig with HA URLs", () => {
  it("names the variable in the error", () => {
    expect(() => loadConfig({ HOME: "/h", DATABASE_URL: "postgresql://u@h:0/db", REDIS_URL: "redis://x" })).toThrow(
      /DATABASE_URL "h:0" is not host\[:port\]/,
    );
  });
});
