import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  ConflictError,
  InvalidError,
  UnavailableError,
  checkReplicaAdd,
  mergeReplicaUrls,
  replicaConnection,
  replicaSettings,
  replicaUrl,
  type ReplicaAddInput,
} from "../src";

const ok: ReplicaAddInput = {
  node: { hostname: "m1", role: "MANAGER" },
  machine: { name: "m1", state: "READY", ip: "198.18.0.2" },
  existing: null,
  bundle: { path: "/b.tar.gz", present: true },
  databaseUrl: "postgresql://u@10.0.0.1/db",
  redisUrl: "redis://10.0.0.1:6379",
};

describe("checkReplicaAdd", () => {
  it("gives the machine's address when a replica may be installed (again after a failed one)", () => {
    expect(checkReplicaAdd(ok)).toEqual({ ip: "198.18.0.2" });
    expect(checkReplicaAdd({ ...ok, existing: { state: "failed" } })).toEqual({ ip: "198.18.0.2" });
  });

  it.each<[string, Partial<ReplicaAddInput>, new (...a: never[]) => Error, RegExp]>([
    ["a worker", { node: { hostname: "m1", role: "WORKER" } }, ConflictError, /node m1 is a worker: only managers run the control plane/],
    ["no machine", { machine: null }, ConflictError, /not a machine Flotilla made/],
    ["a stopped machine", { machine: { name: "m1", state: "STOPPED", ip: "198.18.0.2" } }, ConflictError, /machine m1 is stopped/],
    [
      "no IP",
      { machine: { name: "m1", state: "READY", ip: null } },
      ConflictError,
      /machine m1 is ready: a control-plane replica needs it ready/,
    ],
    ["one running", { existing: { state: "running" } }, ConflictError, /already runs a control-plane replica \(running\)/],
    ["one being removed", { existing: { state: "removing" } }, ConflictError, /\(removing\)/],
    [
      "no bundle",
      { bundle: { path: "/b.tar.gz", present: false } },
      UnavailableError,
      /\/b\.tar\.gz is missing: build it with npm run build:control-plane-bundle/,
    ],
  ])("refuses %s, naming why", (_, change, type, message) => {
    const call = () => checkReplicaAdd({ ...ok, ...change });
    expect(call).toThrow(type);
    expect(call).toThrow(message);
  });
});

describe("replicaConnection", () => {
  const own = (url: string, hosts: string[]) => ({ url, hosts });
  it("uses the override, else this process's URL when it does not name loopback", () => {
    expect(replicaConnection("Postgres", own("postgresql://127.0.0.1/db", ["127.0.0.1"]), "postgresql://10.0.0.1/db", "S")).toBe(
      "postgresql://10.0.0.1/db",
    );
    expect(replicaConnection("Redis", own("redis://10.0.0.5:6379", ["10.0.0.5"]), undefined, "S")).toBe("redis://10.0.0.5:6379");
  });

  it.each([["127.0.0.1"], ["127.1.2.3"], ["localhost"], ["::1"], ["[::1]"], ["0.0.0.0"]])(
    "refuses %s without an override, naming the setting",
    (host) => {
      const call = () => replicaConnection("Postgres", own("x", ["10.0.0.1", host]), undefined, "FLOTILLA_REPLICA_DATABASE_URL");
      expect(call).toThrow(InvalidError);
      expect(call).toThrow(/which a machine cannot reach: set FLOTILLA_REPLICA_DATABASE_URL to Postgres as machines reach it/);
    },
  );
});

describe("mergeReplicaUrls", () => {
  const row = (n: number, state = "running") => ({ apiUrl: `http://10.0.0.${n}:8080`, agentApiUrl: `http://10.0.0.${n}:8080`, state });

  it("lists the configured URLs first, then the running replicas', each once", () => {
    expect(
      mergeReplicaUrls({ apiUrls: ["http://a:1"], agentApiUrls: ["http://g:1"] }, [row(2), row(3, "installing"), row(4, "failed"), row(5)]),
    ).toEqual({
      apiUrls: ["http://a:1", "http://10.0.0.2:8080", "http://10.0.0.5:8080"],
      agentApiUrls: ["http://g:1", "http://10.0.0.2:8080", "http://10.0.0.5:8080"],
    });
    expect(mergeReplicaUrls({ apiUrls: ["http://10.0.0.2:8080"], agentApiUrls: [] }, [row(2)])).toEqual({
      apiUrls: ["http://10.0.0.2:8080"],
      // Agents that do not report get no list, replicas or not.
      agentApiUrls: [],
    });
  });

  it("keeps every configured URL in order and adds only running replicas (property)", () => {
    const url = fc.integer({ min: 1, max: 20 }).map((n) => `http://10.0.0.${n}:8080`);
    const state = fc.constantFrom("installing", "running", "removing", "failed");
    fc.assert(
      fc.property(fc.uniqueArray(url), fc.array(fc.record({ apiUrl: url, state })), (configured, rows) => {
        const merged = mergeReplicaUrls(
          { apiUrls: configured, agentApiUrls: configured },
          rows.map((r) => ({ ...r, agentApiUrl: r.apiUrl })),
        );
        expect(merged.apiUrls.slice(0, configured.length)).toEqual(configured);
        expect(new Set(merged.apiUrls).size).toBe(merged.apiUrls.length);
        for (const u of merged.apiUrls.slice(configured.length))
          expect(rows.some((r) => r.apiUrl === u && r.state === "running")).toBe(true);
        for (const r of rows) if (r.state === "running") expect(merged.apiUrls).toContain(r.apiUrl);
      }),
    );
  });
});

describe("replicaSettings", () => {
  it("runs the api role on every address of the machine, with the shared settings and its own paths", () => {
    const env = replicaSettings({
      databaseUrl: "postgresql://u:p@198.18.0.1:5432/db",
      redisUrl: "redis://198.18.0.1:6379",
      port: 8080,
      queuePrefix: "flotilla",
      publicUrls: ["http://a:1"],
      agentApiUrls: [],
      heartbeatMs: 5000,
      paths: { configDir: "/etc/f", dataDir: "/var/lib/f", secretsKeyFile: "/etc/f/secrets.key" },
    });
    expect(env).toEqual({
      DATABASE_URL: "postgresql://u:p@198.18.0.1:5432/db",
      REDIS_URL: "redis://198.18.0.1:6379",
      FLOTILLA_ROLE: "api",
      FLOTILLA_HOST: "0.0.0.0",
      FLOTILLA_PORT: "8080",
      FLOTILLA_QUEUE_PREFIX: "flotilla",
      FLOTILLA_HEARTBEAT_MS: "5000",
      FLOTILLA_CONFIG_DIR: "/etc/f",
      FLOTILLA_DATA_DIR: "/var/lib/f",
      FLOTILLA_SECRETS_KEY_FILE: "/etc/f/secrets.key",
      FLOTILLA_PUBLIC_URLS: "http://a:1",
    });
    expect(replicaUrl("198.18.0.2", 8080)).toBe("http://198.18.0.2:8080");
    expect(replicaUrl("fd00::2", 8080)).toBe("http://[fd00::2]:8080");
  });
});
