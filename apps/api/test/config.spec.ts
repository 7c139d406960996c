import { describe, expect, it } from "vitest";
import { execFileSync } from "node:child_process";
import { join } from "node:path";
import { ConfigError, loadConfig } from "../src/config/config";

const valid = { DATABASE_URL: "postgresql://u@127.0.0.1:5432/db", REDIS_URL: "redis://127.0.0.1:6379", HOME: "/home/u" };

describe("loadConfig", () => {
  it("applies defaults", () => {
    const c = loadConfig(valid);
    expect(c).toMatchObject({
      host: "127.0.0.1",
      port: 8080,
      role: "all",
      logLevel: "log",
      sweepIntervalMs: 30_000,
      configDir: "/home/u/.config/flotilla",
      heartbeatMs: 5_000,
      dbPoolSize: 20,
      listingMaxAgeMs: 1_000,
    });
  });

  it("reads the replicas' public URLs (none by default)", () => {
    expect(loadConfig(valid).publicUrls).toEqual([]);
    expect(loadConfig({ ...valid, FLOTILLA_PUBLIC_URLS: "http://a:8080/, http://b:8080" }).publicUrls).toEqual([
      "http://a:8080",
      "http://b:8080",
    ]);
  });

  it("honours XDG_CONFIG_HOME and FLOTILLA_CONFIG_DIR", () => {
    expect(loadConfig({ ...valid, XDG_CONFIG_HOME: "/x" }).configDir).toBe("/x/flotilla");
    expect(loadConfig({ ...valid, FLOTILLA_CONFIG_DIR: "/y" }).configDir).toBe("/y");
  });

  it.each([
    [{ DATABASE_URL: undefined }, /DATABASE_URL is required/],
    [{ DATABASE_URL: "mysql://x/y" }, /DATABASE_URL must be a postgresql:\/\/ or postgres:\/\/ URL/],
    [{ REDIS_URL: "nonsense" }, /REDIS_URL must be a redis:\/\/ or rediss:\/\/ or redis\+sentinel:\/\/ URL/],
    [{ FLOTILLA_PORT: "70000" }, /FLOTILLA_PORT/],
    [{ FLOTILLA_ROLE: "boss" }, /FLOTILLA_ROLE/],
    [{ FLOTILLA_HEARTBEAT_MS: "10" }, /FLOTILLA_HEARTBEAT_MS/],
    [{ FLOTILLA_DB_POOL_SIZE: "0" }, /FLOTILLA_DB_POOL_SIZE/],
    [{ FLOTILLA_PUBLIC_URLS: "http://a:1,b" }, /FLOTILLA_PUBLIC_URLS "b" is not an http:\/\/ or https:\/\/ URL/],
  ])("rejects %o", (override, message) => {
    expect(() => loadConfig({ ...valid, ...override })).toThrow(ConfigError);
    expect(() => loadConfig({ ...valid, ...override })).toThrow(message);
  });

  it("names every problem in one message", () => {
    expect(() => loadConfig({ HOME: "/h" })).toThrow(/DATABASE_URL is required; REDIS_URL is required/);
  });

  it("takes the role from the command line over the environment", () => {
    expect(loadConfig({ ...valid, FLOTILLA_ROLE: "api" }, "worker").role).toBe("worker");
    expect(() => loadConfig(valid, "boss")).toThrow(/role argument/);
  });

  it("makes the process exit 1 with one clear line on bad config", () => {
    let err: { status: number; stderr: string } | undefined;
    try {
      execFileSync(process.execPath, ["--import", "tsx", join(__dirname, "../src/main.ts")], {
        env: {
          PATH: process.env.PATH,
          HOME: "/tmp",
          REDIS_URL: "redis://127.0.0.1:1",
          TSX_TSCONFIG_PATH: join(__dirname, "../tsconfig.json"),
        },
        encoding: "utf8",
        stdio: "pipe",
      });
    } catch (e) {
      err = e as { status: number; stderr: string };
    }
    expect(err?.status).toBe(1);
    expect(err?.stderr.trim()).toBe("flotilla-api: invalid configuration: DATABASE_URL is required");
    // Starting the real process compiles the whole API with tsx first: seconds on a busy machine.
  }, 60_000);
});
