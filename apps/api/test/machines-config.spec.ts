import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { agentTokenName, splitOptions } from "../src/machines/machine-host";
import { loadMachinesConfig } from "../src/machines/machines-config";

describe("machines configuration", () => {
  const dir = mkdtempSync(join(tmpdir(), "flotilla-machines-config-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("creates the data dir and finds the bundle in it first", () => {
    const data = join(dir, "data");
    let c = loadMachinesConfig("/cfg", { FLOTILLA_DATA_DIR: data });
    expect(c.dataDir).toBe(data);
    expect(c.userMachinesDir).toBe("/cfg/machines");
    expect(c.agentBundle).toMatch(/agent\/dist\/flotilla-agent\.tar\.gz$/);
    expect(c.agentTimeoutMs).toBe(60_000);
    expect(c.agentApiUrl).toBeUndefined();
    rmSync(join(data, "agent"), { recursive: true, force: true });
    mkdirSync(join(data, "agent"));
    writeFileSync(join(data, "agent", "flotilla-agent.tar.gz"), "");
    c = loadMachinesConfig("/cfg", { FLOTILLA_DATA_DIR: data, FLOTILLA_AGENT_API_URL: "http://198.18.0.1:8080" });
    expect(c.agentBundle).toBe(join(data, "agent", "flotilla-agent.tar.gz"));
    expect(c.agentApiUrl).toBe("http://198.18.0.1:8080");
    expect(c.agentApiUrls).toEqual(["http://198.18.0.1:8080"]);
    // Every replica's agent-facing URL, in order.
    c = loadMachinesConfig("/cfg", { FLOTILLA_DATA_DIR: data, FLOTILLA_AGENT_API_URL: "http://198.18.0.1:8080/, http://198.18.0.2:8080" });
    expect(c.agentApiUrls).toEqual(["http://198.18.0.1:8080", "http://198.18.0.2:8080"]);
    expect(c.agentApiUrl).toBe("http://198.18.0.1:8080");
  });

  it("lists the control plane's own paths, which machines sharing this host may not bind", () => {
    const data = join(dir, "data");
    const c = loadMachinesConfig("/cfg", { FLOTILLA_DATA_DIR: data, FLOTILLA_STATE_DIR: "/var/lib/flotilla", HOME: "/home/u" });
    expect(c.controlPlanePaths).toEqual([
      "/cfg",
      data,
      "/var/lib/flotilla",
      process.getuid?.() === 0 ? "/run/flotilla-control/locks" : "/home/u/.local/state/flotilla/locks",
    ]);
  });

  it("refuses bad values with one clear line", () => {
    expect(() => loadMachinesConfig("/cfg", { FLOTILLA_DATA_DIR: "relative/dir" })).toThrow("FLOTILLA_DATA_DIR must be an absolute path");
    writeFileSync(join(dir, "file"), "");
    expect(() => loadMachinesConfig("/cfg", { FLOTILLA_DATA_DIR: join(dir, "file") })).toThrow("is not a writable directory");
    expect(() => loadMachinesConfig("/cfg", { FLOTILLA_DATA_DIR: dir, FLOTILLA_AGENT_TIMEOUT_MS: "10" })).toThrow(
      "FLOTILLA_AGENT_TIMEOUT_MS",
    );
    expect(() => loadMachinesConfig("/cfg", { FLOTILLA_DATA_DIR: dir, FLOTILLA_AGENT_API_URL: "ftp://x" })).toThrow(
      "FLOTILLA_AGENT_API_URL",
    );
    expect(() => loadMachinesConfig("/cfg", { FLOTILLA_DATA_DIR: dir, FLOTILLA_AGENT_API_URL: "http://a:1,nonsense" })).toThrow(
      'invalid configuration: FLOTILLA_AGENT_API_URL: "nonsense" is not an http:// or https:// URL',
    );
  });

  it("splits engine options from the driver's", () => {
    expect(splitOptions({ "netns-cidr": "198.18.0.1/16", "--engine-insecure-registry": "198.18.0.1:5000, reg.local" })).toEqual({
      driver: { "netns-cidr": "198.18.0.1/16" },
      engine: { insecureRegistries: ["198.18.0.1:5000", "reg.local"] },
    });
    expect(() => splitOptions({ "engine-storage-driver": "overlay" })).toThrow("unknown option --engine-storage-driver");
    expect(() => splitOptions({ "engine-insecure-registry": "http://x" })).toThrow("--engine-insecure-registry must be host or host:port");
  });

  it("reads --engine-env and --engine-label as KEY=VALUE lists, refusing what provisioning owns", () => {
    expect(
      splitOptions({ "engine-env": "HTTP_PROXY=http://198.18.0.1:3128,NO_PROXY=", "engine-label": "zone=east,disk=ssd" }).engine,
    ).toEqual({
      env: { HTTP_PROXY: "http://198.18.0.1:3128", NO_PROXY: "" },
      labels: { zone: "east", disk: "ssd" },
    });
    expect(() => splitOptions({ "engine-env": "1BAD=x" })).toThrow('--engine-env must be KEY=VALUE with KEY a variable name, got "1BAD=x"');
    expect(() => splitOptions({ "engine-env": "NOEQUALS" })).toThrow("--engine-env must be KEY=VALUE");
    expect(() => splitOptions({ "engine-env": "FLOTILLA_JOIN_TOKEN=x" })).toThrow(
      "--engine-env FLOTILLA_JOIN_TOKEN: FLOTILLA_* variables are set by provisioning",
    );
    expect(() => splitOptions({ "engine-label": "=east" })).toThrow("--engine-label must be KEY=VALUE");
    expect(() => splitOptions({ "engine-storage-driver": "x" })).toThrow(
      "unknown option --engine-storage-driver (engine options: --engine-insecure-registry, --engine-registry-mirror, --engine-env, --engine-label)",
    );
  });

  it("reads --engine-registry-mirror as a list of http(s)://host[:port] URLs", () => {
    expect(splitOptions({ "engine-registry-mirror": "http://198.19.150.1:5000, https://mirror.example.test" }).engine).toEqual({
      registryMirrors: ["http://198.19.150.1:5000", "https://mirror.example.test"],
    });
    for (const bad of ["198.19.150.1:5000", "ftp://mirror", "http://mirror/v2/", "https://u:p@mirror"]) {
      let err: (Error & { details?: unknown }) | undefined;
      try {
        splitOptions({ "engine-registry-mirror": bad });
      } catch (e) {
        err = e as Error;
      }
      expect(err?.message).toMatch(/^--engine-registry-mirror: registry mirror ".*": (not a URL|want http\(s\):\/\/host\[:port\])/);
      expect(err?.details).toEqual({ field: "engine-registry-mirror" });
    }
  });

  it("names agent tokens within the 63-character limit", () => {
    expect(agentTokenName("devdays")).toBe("agent-devdays");
    const long = agentTokenName("a".repeat(63));
    expect(long.length).toBeLessThanOrEqual(63);
    expect(long).not.toBe(agentTokenName(`${"a".repeat(62)}b`));
  });
});
