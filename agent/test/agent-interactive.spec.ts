// Pure parts of interactive containers, exec (and its pruning), health checks, top, stats, update,
// and the overlay options of a stopped container's mount.
import { describe, expect, it } from "vitest";
import { planUpdate } from "../src/containers/container-update";
import type { HostConfig } from "../src/containers/container-types";
import { parseBlkio, parseNetDev, systemCpuUsage } from "../src/containers/stats";
import { filterPs } from "../src/containers/top";
import { DetachDetector, parseDetachKeys } from "../src/exec/detach-keys";
import { parseExecCreate } from "../src/exec/exec-args";
import { demux } from "../src/exec/exec-service";
import { execsToPrune } from "../src/exec/exec-prune";
import { overlayOptions } from "../src/containers/rootfs-mount";
import { applyProbe, healthPlan, mergeHealthcheck } from "../src/health/health-config";

describe("detach keys", () => {
  it("parses Docker's key names and refuses others", () => {
    expect([...parseDetachKeys("ctrl-p,ctrl-q")]).toEqual([16, 17]);
    expect([...parseDetachKeys("a,ctrl-@,ctrl-[")]).toEqual([97, 0, 27]);
    expect(() => parseDetachKeys("ctrl-pp")).toThrow("Invalid detach keys");
    expect(() => parseDetachKeys("")).toThrow("Invalid detach keys");
  });

  it("holds a partial match back, releases it when broken, and detaches on the whole sequence across chunks", () => {
    const d = new DetachDetector(Buffer.from([16, 17]));
    expect(d.feed(Buffer.from("ab\x10"))).toEqual({ forward: Buffer.from("ab"), detached: false });
    expect(d.feed(Buffer.from("x"))).toEqual({ forward: Buffer.from("\x10x"), detached: false });
    expect(d.feed(Buffer.from("\x10\x10"))).toEqual({ forward: Buffer.from("\x10"), detached: false });
    expect(d.feed(Buffer.from("\x11rest"))).toEqual({ forward: Buffer.from(""), detached: true });
    const one = new DetachDetector(Buffer.from("q"));
    expect(one.feed(Buffer.from("abq"))).toEqual({ forward: Buffer.from("ab"), detached: true });
  });
});

describe("exec create body", () => {
  it("validates with Docker's messages and refuses --privileged", () => {
    expect(parseExecCreate({ Cmd: ["sh"], Tty: true, AttachStdin: true, User: "nobody", WorkingDir: "/tmp", Env: ["A=1"] })).toMatchObject({
      cmd: ["sh"],
      tty: true,
      attachStdin: true,
      user: "nobody",
      workingDir: "/tmp",
      env: ["A=1"],
    });
    expect(() => parseExecCreate({})).toThrow("No exec command specified");
    expect(() => parseExecCreate({ Cmd: [] })).toThrow("No exec command specified");
    expect(() => parseExecCreate({ Cmd: ["sh"], Privileged: true })).toThrow("privileged exec");
    expect(() => parseExecCreate({ Cmd: ["sh"], WorkingDir: "tmp" })).toThrow("needs to be an absolute path");
    expect(() => parseExecCreate({ Cmd: ["sh"], WorkingDir: "/a/../b" })).toThrow("no '..'");
    expect(() => parseExecCreate({ Cmd: ["sh"], Env: ["=x"] })).toThrow("invalid environment variable");
    expect(() => parseExecCreate({ Cmd: ["sh"], DetachKeys: "nope-x" })).toThrow("Invalid detach keys");
  });

  it("demultiplexes frames", () => {
    const f = (s: number, t: string) => Buffer.concat([Buffer.from([s, 0, 0, 0, 0, 0, 0, t.length]), Buffer.from(t)]);
    expect(demux(Buffer.concat([f(1, "out\n"), f(2, "err\n")]))).toBe("out\nerr\n");
  });
});

describe("health checks", () => {
  const S = 1e9;
  it("merges the request over the image field by field; NONE disables; validates", () => {
    expect(mergeHealthcheck(null, { Test: ["CMD-SHELL", "true"], Interval: 5 * S })).toEqual({
      Test: ["CMD-SHELL", "true"],
      Interval: 5 * S,
      Timeout: 0,
      StartPeriod: 0,
      Retries: 0,
    });
    expect(mergeHealthcheck({ Interval: 2 * S, Retries: 7 }, { Test: ["CMD", "check"], Interval: 5 * S })).toMatchObject({
      Test: ["CMD", "check"],
      Interval: 2 * S,
      Retries: 7,
    });
    expect(mergeHealthcheck({ Test: ["NONE"] }, { Test: ["CMD", "check"] })).toEqual({ Test: ["NONE"] });
    expect(mergeHealthcheck(undefined, undefined)).toBeNull();
    expect(() => mergeHealthcheck({ Test: ["CMD-SHELL", "x"], Interval: 1000 }, null)).toThrow(
      "Interval in Healthcheck cannot be less than 1ms",
    );
    expect(() => mergeHealthcheck({ Test: ["CMD-SHELL", "x"], Retries: -1 }, null)).toThrow("Retries in Healthcheck cannot be negative");
    expect(() => mergeHealthcheck({ Test: ["BOGUS", "x"] }, null)).toThrow("unknown Healthcheck type");
  });

  it("plans the probe with Docker's defaults", () => {
    expect(healthPlan({ Test: ["CMD-SHELL", "curl -f localhost"] })).toEqual({
      cmd: ["/bin/sh", "-c", "curl -f localhost"],
      intervalMs: 30_000,
      timeoutMs: 30_000,
      startPeriodMs: 0,
      retries: 3,
    });
    expect(healthPlan({ Test: ["CMD", "check", "--x"], Interval: 2 * S, Retries: 1 })).toMatchObject({
      cmd: ["check", "--x"],
      intervalMs: 2000,
      retries: 1,
    });
    expect(healthPlan({ Test: ["NONE"] })).toBeNull();
  });

  it("folds probes: healthy on success, unhealthy after retries, start period failures not counted", () => {
    const plan = healthPlan({ Test: ["CMD", "x"], Retries: 2 })!;
    const r = (exitCode: number) => ({ exitCode, output: "o", start: "s", end: "e" });
    let h = { Status: "starting" as const, FailingStreak: 0, Log: [] };
    let next = applyProbe(h, r(1), plan, true);
    expect(next).toMatchObject({ Status: "starting", FailingStreak: 0 });
    next = applyProbe(next, r(1), plan, false);
    expect(next).toMatchObject({ Status: "starting", FailingStreak: 1 });
    next = applyProbe(next, r(1), plan, false);
    expect(next).toMatchObject({ Status: "unhealthy", FailingStreak: 2 });
    next = applyProbe(next, r(0), plan, false);
    expect(next).toMatchObject({ Status: "healthy", FailingStreak: 0 });
    for (let i = 0; i < 10; i++) next = applyProbe(next, r(0), plan, false);
    expect(next.Log).toHaveLength(5);
    h = { Status: "starting", FailingStreak: 0, Log: [] };
    expect(applyProbe(h, { ...r(1), output: "x".repeat(10_000) }, plan, false).Log[0]!.Output).toHaveLength(4096);
  });
});

describe("top, stats and update", () => {
  it("keeps the container's rows of ps, the command column whole", () => {
    const ps =
      "UID PID PPID C STIME TTY TIME CMD\nroot 10 1 0 10:00 ? 00:00:00 sleep 100\nroot 11 1 0 10:00 ? 00:00:00 /usr/bin/other thing\n";
    expect(filterPs(ps, new Set([10]))).toEqual({
      Titles: ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"],
      Processes: [["root", "10", "1", "0", "10:00", "?", "00:00:00", "sleep 100"]],
    });
    expect(() => filterPs("USER COMMAND\nroot x\n", new Set())).toThrow("Couldn't find PID field");
  });

  it("parses net/dev without loopback, blkio v1 and v2, /proc/stat", () => {
    const dev =
      "Inter-|   Receive\n face |bytes packets errs drop fifo frame compressed multicast|bytes packets errs drop fifo colls carrier compressed\n    lo: 100 1 0 0 0 0 0 0 100 1 0 0 0 0 0 0\n  eth0: 2000 20 1 2 0 0 0 0 3000 30 3 4 0 0 0 0\n";
    expect(parseNetDev(dev)).toEqual({
      eth0: { rx_bytes: 2000, rx_packets: 20, rx_errors: 1, rx_dropped: 2, tx_bytes: 3000, tx_packets: 30, tx_errors: 3, tx_dropped: 4 },
    });
    expect(parseBlkio("8:0 Read 4096\n8:0 Write 512\nTotal 4608\n", 1, "bytes")).toEqual([
      { major: 8, minor: 0, op: "read", value: 4096 },
      { major: 8, minor: 0, op: "write", value: 512 },
    ]);
    expect(parseBlkio("8:0 rbytes=10 wbytes=20 rios=1 wios=2 dbytes=0 dios=0\n", 2, "ios")).toEqual([
      { major: 8, minor: 0, op: "read", value: 1 },
      { major: 8, minor: 0, op: "write", value: 2 },
    ]);
    expect(systemCpuUsage("cpu  100 0 50 850 0 0 0 0 0 0\ncpu0 1 2 3\n")).toBe(1000 * 1e7);
  });

  it("plans updates: applies the known fields, refuses the rest by name", () => {
    const hc = {
      Memory: 0,
      MemorySwap: 0,
      NanoCpus: 0,
      CpuShares: 0,
      CpuPeriod: 0,
      CpuQuota: 0,
      PidsLimit: null,
      AutoRemove: false,
      RestartPolicy: { Name: "", MaximumRetryCount: 0 },
    } as unknown as HostConfig;
    expect(
      planUpdate(
        hc,
        { Memory: 128 << 20, NanoCpus: 5e8, PidsLimit: 10, RestartPolicy: { Name: "always" }, BlkioWeight: 0, CpusetCpus: "" },
        false,
      ),
    ).toMatchObject({ Memory: 128 << 20, MemorySwap: 128 << 20, NanoCpus: 5e8, PidsLimit: 10, RestartPolicy: { Name: "always" } });
    expect(() => planUpdate(hc, { BlkioWeight: 300 }, false)).toThrow("BlkioWeight is not supported");
    expect(() => planUpdate(hc, { Memory: 1000 }, false)).toThrow("Minimum memory limit allowed is 6MB");
    expect(() => planUpdate(hc, { RestartPolicy: { Name: "always" } }, true)).toThrow("AutoRemove");
    expect(() => planUpdate(hc, { Memory: 64 << 20, MemorySwap: 128 << 20 }, false)).toThrow("swap is always off");
  });
});

describe("exec records and stopped containers' file systems", () => {
  it("drops finished execs past the TTL and beyond the bound per container, newest kept; never running ones", () => {
    const r = { ttlMs: 1000, maxEndedPerContainer: 2 };
    const execs = [
      { id: "run", containerId: "a", endedAt: null },
      { id: "old", containerId: "a", endedAt: 0 },
      { id: "a1", containerId: "a", endedAt: 9100 },
      { id: "a2", containerId: "a", endedAt: 9200 },
      { id: "a3", containerId: "a", endedAt: 9300 },
      { id: "b1", containerId: "b", endedAt: 9100 },
    ];
    expect(execsToPrune(execs, 10_000, r).sort()).toEqual(["a1", "old"]);
    expect(execsToPrune(execs, 20_000, r).sort()).toEqual(["a1", "a2", "a3", "b1", "old"]);
    expect(execsToPrune(execs, 9300, { ttlMs: 1000, maxEndedPerContainer: 0 }).sort()).toEqual(["a1", "a2", "a3", "b1", "old"]);
  });

  it("mounts layers of one parent by name, the upper dir as the top lower layer when read-only", () => {
    const l = { lowerDirs: ["/s/layers/sha256/bb", "/s/layers/sha256/aa"], upper: "/c/x/rootfs/upper", work: "/c/x/rootfs/work" };
    expect(overlayOptions(l, false)).toEqual({ cwd: "/s/layers/sha256", options: "lowerdir=/c/x/rootfs/upper:bb:aa,index=off,ro" });
    expect(overlayOptions(l, true)).toEqual({
      cwd: "/s/layers/sha256",
      options: "lowerdir=bb:aa,upperdir=/c/x/rootfs/upper,workdir=/c/x/rootfs/work,index=off",
    });
    expect(overlayOptions({ ...l, lowerDirs: ["/p/one", "/q/two"] }, true).options).toMatch(/^lowerdir=\/p\/one:\/q\/two,/);
  });
});
