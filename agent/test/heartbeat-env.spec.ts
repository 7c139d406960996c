import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { API_URLS_FILE, saveApiUrls, startingApiUrl } from "../src/heartbeat/api-urls-file";
import {
  chooseDataPlane,
  heartbeatsFromEnv,
  localEndpoints,
  parseDataPlane,
  parseNodeLabels,
  toHeartbeatContainer,
} from "../src/heartbeat";
import type { ContainerRecord } from "../src/containers/container-types";

const record = (status: ContainerRecord["state"]["status"], extra: Partial<ContainerRecord["state"]> = {}) =>
  ({
    id: "c".repeat(64),
    config: { Labels: { "flotilla.task.id": "t1" } },
    state: {
      status,
      pid: 0,
      shimPid: 0,
      exitCode: 0,
      oomKilled: false,
      error: "",
      startedAt: "2026-01-01T00:00:00Z",
      finishedAt: null,
      ...extra,
    },
  }) as unknown as ContainerRecord;

describe("heartbeats from the provisioner's env", () => {
  it("stays off without an API URL and token, even with the engine URL the provisioner always writes", () => {
    expect(heartbeatsFromEnv({}, { all: () => [] }, () => {})).toBeNull();
    expect(
      heartbeatsFromEnv({ FLOTILLA_ENGINE_URL: "https://198.18.0.2:2376", FLOTILLA_MACHINE_NAME: "m" }, { all: () => [] }, () => {}),
    ).toBeNull();
  });

  it("names what is missing when only part is configured", () => {
    expect(() => heartbeatsFromEnv({ FLOTILLA_API_URL: "http://127.0.0.1:8080" }, { all: () => [] }, () => {})).toThrow(
      /missing FLOTILLA_JOIN_TOKEN \(or FLOTILLA_API_TOKEN\), FLOTILLA_ENGINE_URL/,
    );
  });

  it.each([
    ["running", "running"],
    ["restarting", "running"],
    ["created", "created"],
    ["exited", "exited"],
    ["dead", "exited"],
  ] as const)("reports a %s container as %s", (status, state) => {
    expect(toHeartbeatContainer(record(status)).state).toBe(state);
  });

  it("carries exit code and OOM only for exited containers", () => {
    expect(toHeartbeatContainer(record("exited", { exitCode: 137, oomKilled: true, finishedAt: "2026-01-01T00:01:00Z" }))).toMatchObject({
      state: "exited",
      exitCode: 137,
      oomKilled: true,
      labels: { "flotilla.task.id": "t1" },
      finishedAt: "2026-01-01T00:01:00Z",
    });
    expect(toHeartbeatContainer(record("running"))).not.toHaveProperty("exitCode");
  });

  it("carries a running container's health, with the last failed check's output", () => {
    const log = (ExitCode: number, Output: string) => ({ Start: "", End: "", ExitCode, Output });
    const unhealthy = { Status: "unhealthy" as const, FailingStreak: 3, Log: [log(0, "ok"), log(1, "connection refused")] };
    expect(toHeartbeatContainer(record("running", { health: unhealthy }))).toMatchObject({
      health: "unhealthy",
      healthOutput: "connection refused",
    });
    const healthy = { Status: "healthy" as const, FailingStreak: 0, Log: [log(0, "ok")] };
    const h = toHeartbeatContainer(record("running", { health: healthy }));
    expect(h.health).toBe("healthy");
    expect(h).not.toHaveProperty("healthOutput");
    expect(toHeartbeatContainer(record("running"))).not.toHaveProperty("health");
    expect(toHeartbeatContainer(record("exited", { health: unhealthy }))).not.toHaveProperty("health");
  });

  it("parses node labels and rejects malformed ones", () => {
    expect(parseNodeLabels("zone=a, disk=ssd")).toEqual({ zone: "a", disk: "ssd" });
    expect(parseNodeLabels(undefined)).toEqual({});
    expect(() => parseNodeLabels("zone")).toThrow(/"zone" is not KEY=VALUE/);
  });

  it("reads FLOTILLA_INGRESS: auto by default, kernel or proxy, anything else refused by name", () => {
    expect(parseDataPlane(undefined)).toBe("auto");
    expect(parseDataPlane(" ")).toBe("auto");
    expect(parseDataPlane("proxy")).toBe("proxy");
    expect(parseDataPlane("kernel")).toBe("kernel");
    expect(() => parseDataPlane("ebpf")).toThrow('FLOTILLA_INGRESS: "ebpf" is not auto, kernel or proxy');
  });

  it("serves with the userland proxy when asked to, and says nothing about the kernel", async () => {
    const logs: string[] = [];
    const plane = await chooseDataPlane({ dataPlane: "proxy" }, { all: () => [] }, (m) => logs.push(m));
    expect(plane.kind).toBe("proxy");
    expect(logs).toEqual([]);
    await plane.close();
  });

  it("lists the ports only running containers publish, for the kernel mesh's local backends", () => {
    const withNet = (status: ContainerRecord["state"]["status"], ip: string) =>
      ({
        ...record(status),
        network: {
          mode: "bridge",
          ipAddress: ip,
          gateway: "",
          macAddress: "",
          prefixLen: 16,
          ports: [{ containerPort: 80, protocol: "tcp", hostIp: "0.0.0.0", hostPort: 32768 }],
        },
      }) as ContainerRecord;
    expect(localEndpoints([withNet("running", "172.31.0.5"), withNet("exited", "172.31.0.6"), record("running")])).toEqual([
      { hostPort: 32768, protocol: "tcp", ip: "172.31.0.5", containerPort: 80 },
    ]);
  });
});

describe("the replica list kept in the state dir", () => {
  it("starts from the saved list learnt under the same env value; a new env value (re-provisioned) wins", () => {
    const dir = mkdtempSync(join(tmpdir(), "flotilla-api-urls-"));
    try {
      expect(startingApiUrl("http://a:1", dir)).toBe("http://a:1");
      expect(startingApiUrl("http://a:1", undefined)).toBe("http://a:1");
      saveApiUrls(dir, "http://a:1", ["http://a:1", "http://b:2"]);
      expect(startingApiUrl("http://a:1", dir)).toBe("http://a:1,http://b:2");
      expect(startingApiUrl("http://c:3,http://d:4", dir)).toBe("http://c:3,http://d:4");
      // A damaged file is no list: the env's applies.
      writeFileSync(join(dir, API_URLS_FILE), '{"fromEnv":"http://a:1","urls":["ftp://x"]}');
      expect(startingApiUrl("http://a:1", dir)).toBe("http://a:1");
      writeFileSync(join(dir, API_URLS_FILE), "not json");
      expect(startingApiUrl("http://a:1", dir)).toBe("http://a:1");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
