// Unit tests of the container logic that needs no kernel: create-request validation and image
// defaults, restart policies, shim arguments, list filters, Docker shapes, log framing.
import { InvalidError, NotSupportedError } from "@flotilla/core";
import { describe, expect, it } from "vitest";
import { selectContainers } from "../src/containers/container-filters";
import type { ContainerRecord } from "../src/containers/container-types";
import {
  mergeEnv,
  parseBind,
  parseContainerPort,
  parseCreateRequest,
  validateName,
  type CreateBody,
} from "../src/containers/create-request";
import { humanDuration, statusText, toContainerInspect, toContainerSummary } from "../src/containers/docker-shapes";
import { frame, parseRecords, renderRecords, timeNano } from "../src/containers/logs";
import { restartDelayMs, shouldRestart } from "../src/containers/restart-policy";
import { shimRunArgs } from "../src/containers/shim-args";
import { signalNumber } from "../src/containers/shim-client";
import type { ContainerPaths } from "../src/containers/container-store";

const IMAGE = {
  Cmd: ["sh"],
  Entrypoint: null,
  Env: ["PATH=/bin", "A=image"],
  WorkingDir: "/tmp",
  User: "",
  Labels: { from: "image", x: "image" },
  ExposedPorts: { "8080/tcp": {} },
};

function spec(body: Partial<CreateBody> & { HostConfig?: CreateBody["HostConfig"] } = {}) {
  return parseCreateRequest({ Image: "busybox", ...body }, IMAGE);
}

describe("create request", () => {
  it("applies the image defaults", () => {
    const s = spec();
    expect(s.path).toBe("sh");
    expect(s.args).toEqual([]);
    expect(s.config).toMatchObject({
      Cmd: ["sh"],
      Entrypoint: null,
      Env: ["PATH=/bin", "A=image"],
      WorkingDir: "/tmp",
      Labels: { from: "image", x: "image" },
      ExposedPorts: { "8080/tcp": {} },
    });
    expect(s.networkMode).toBe("bridge");
    expect(s.hostConfig).toMatchObject({
      NetworkMode: "default",
      RestartPolicy: { Name: "", MaximumRetryCount: 0 },
      AutoRemove: false,
      Memory: 0,
      PidsLimit: 1024,
    });
    expect(spec({ HostConfig: { PidsLimit: -1 } }).hostConfig.PidsLimit).toBeNull();
    expect(spec({ HostConfig: { PidsLimit: 50 } }).hostConfig.PidsLimit).toBe(50);
  });

  it("follows Docker's Entrypoint/Cmd rules", () => {
    expect(spec({ Cmd: ["echo", "hi"] })).toMatchObject({ path: "echo", args: ["hi"] });
    // An Entrypoint in the request drops the image's Cmd.
    expect(spec({ Entrypoint: ["/bin/env"] })).toMatchObject({ path: "/bin/env", args: [] });
    expect(spec({ Entrypoint: ["ls"], Cmd: ["-l"] })).toMatchObject({ path: "ls", args: ["-l"] });
    expect(parseCreateRequest({ Image: "x", Cmd: ["a"] }, { Entrypoint: ["/init"], Cmd: ["b"] })).toMatchObject({
      path: "/init",
      args: ["a"],
    });
    expect(spec({ Cmd: "echo" as unknown as string[] })).toMatchObject({ path: "echo" });
    expect(() => parseCreateRequest({ Image: "x" }, {})).toThrow(/no command specified/);
    expect(() => spec({ Entrypoint: [""] })).toThrow(/no command specified/); // --entrypoint "" and no Cmd
  });

  it("merges Env by name and Labels with the request winning", () => {
    expect(mergeEnv(["A=1", "B=2"], ["B=3", "C=4"])).toEqual(["A=1", "B=3", "C=4"]);
    expect(spec({ Env: ["A=mine"], Labels: { x: "mine" } }).config).toMatchObject({
      Env: ["PATH=/bin", "A=mine"],
      Labels: { from: "image", x: "mine" },
    });
    expect(() => spec({ Env: ["=bad"] })).toThrow(InvalidError);
  });

  it("validates names", () => {
    expect(validateName("web")).toBe("/web");
    expect(validateName("/web-1.a_b")).toBe("/web-1.a_b");
    for (const bad of ["w", "-web", "we b", "a/b", ""]) expect(() => validateName(bad)).toThrow(/Invalid container name/);
  });

  it("validates ports and records the published ones", () => {
    expect(parseContainerPort("80")).toEqual([80, "tcp"]);
    expect(parseContainerPort("53/udp")).toEqual([53, "udp"]);
    expect(() => parseContainerPort("0/tcp")).toThrow(/invalid port specification/);
    expect(() => parseContainerPort("99999")).toThrow(InvalidError);
    expect(() => parseContainerPort("80/sctp")).toThrow(NotSupportedError);
    const s = spec({ HostConfig: { PortBindings: { "80/tcp": [{ HostIp: "127.0.0.1", HostPort: "8000" }, { HostPort: "" }] } } });
    expect(s.ports).toEqual([
      { containerPort: 80, protocol: "tcp", hostIp: "127.0.0.1", hostPort: 8000 },
      { containerPort: 80, protocol: "tcp", hostIp: "", hostPort: 0 },
    ]);
    expect(s.config.ExposedPorts).toEqual({ "8080/tcp": {}, "80/tcp": {} });
    expect(() => spec({ HostConfig: { PortBindings: { "80/tcp": [{ HostPort: "70000" }] } } })).toThrow(
      /invalid port specification: "70000"/,
    );
    expect(() => spec({ HostConfig: { PortBindings: { "80/tcp": [{ HostIp: "nope", HostPort: "1" }] } } })).toThrow(/invalid IP address/);
    expect(() => spec({ HostConfig: { NetworkMode: "host", PortBindings: { "80/tcp": [{ HostPort: "1" }] } } })).toThrow(
      /conflicting options/,
    );
  });

  it("parses binds, mounts, tmpfs and anonymous volumes", () => {
    expect(parseBind("/host:/c:ro")).toEqual({ type: "bind", source: "/host", target: "/c", readOnly: true, createSource: true });
    expect(parseBind("vol:/data")).toEqual({ type: "volume", name: "vol", target: "/data", readOnly: false, anonymous: false });
    expect(() => parseBind("vol")).toThrow(/invalid volume specification/);
    expect(() => parseBind("vol:relative")).toThrow(/must be absolute/);
    expect(() => parseBind("vol:/x:bogus")).toThrow(/invalid mode/);
    const s = spec({
      Volumes: { "/anon": {} },
      HostConfig: {
        Binds: ["/h:/b"],
        Mounts: [
          { Type: "volume", Source: "named", Target: "/n", ReadOnly: true },
          { Type: "bind", Source: "/src", Target: "/m" },
          { Type: "tmpfs", Target: "/t", TmpfsOptions: { SizeBytes: 1024 } },
        ],
        Tmpfs: { "/run": "size=1m" },
      },
    });
    expect(s.mounts).toEqual([
      { type: "bind", source: "/h", target: "/b", readOnly: false, createSource: true },
      { type: "volume", name: "named", target: "/n", readOnly: true, anonymous: false },
      { type: "bind", source: "/src", target: "/m", readOnly: false, createSource: false },
      { type: "tmpfs", target: "/t", sizeBytes: 1024 },
      { type: "tmpfs", target: "/run", sizeBytes: 1024 * 1024 },
      { type: "volume", name: "", target: "/anon", readOnly: false, anonymous: true },
    ]);
    expect(() => spec({ HostConfig: { Binds: ["/a:/x", "v:/x"] } })).toThrow(/Duplicate mount point/);
    expect(() => spec({ HostConfig: { Mounts: [{ Type: "npipe", Target: "/x" }] } })).toThrow(NotSupportedError);
    expect(() => spec({ HostConfig: { Binds: ["/a:/"] } })).toThrow(/can't be '\/'/);
  });

  it("validates resources and restart policies", () => {
    expect(spec({ HostConfig: { Memory: 64 << 20, NanoCpus: 5e8, CpuShares: 512, PidsLimit: 10 } }).hostConfig).toMatchObject({
      Memory: 64 << 20,
      MemorySwap: 64 << 20,
      NanoCpus: 5e8,
      CpuShares: 512,
      PidsLimit: 10,
    });
    expect(spec({ HostConfig: { PidsLimit: -1 } }).hostConfig.PidsLimit).toBeNull();
    expect(() => spec({ HostConfig: { Memory: 1024 } })).toThrow(/Minimum memory limit allowed is 6MB/);
    expect(() => spec({ HostConfig: { Memory: 64 << 20, MemorySwap: 128 << 20 } })).toThrow(NotSupportedError);
    expect(() => spec({ HostConfig: { NanoCpus: 1e9, CpuQuota: 50000 } })).toThrow(/Conflicting options/);
    expect(() => spec({ HostConfig: { CpuPeriod: 10 } })).toThrow(/CPU cfs period/);
    expect(() => spec({ HostConfig: { Memory: -5 } })).toThrow(InvalidError);
    expect(spec({ HostConfig: { RestartPolicy: { Name: "on-failure", MaximumRetryCount: 3 } } }).hostConfig.RestartPolicy).toEqual({
      Name: "on-failure",
      MaximumRetryCount: 3,
    });
    expect(() => spec({ HostConfig: { RestartPolicy: { Name: "sometimes" } } })).toThrow(/invalid restart policy/);
    expect(() => spec({ HostConfig: { RestartPolicy: { Name: "always", MaximumRetryCount: 2 } } })).toThrow(
      /only be used with 'on-failure'/,
    );
    expect(() => spec({ HostConfig: { AutoRemove: true, RestartPolicy: { Name: "always" } } })).toThrow(/AutoRemove/);
  });

  it("answers a field of the wrong JSON type with a 400 naming it (found by npm run fuzz)", () => {
    expect(() => spec({ WorkingDir: -22 } as unknown as CreateBody)).toThrow("WorkingDir must be a string");
    expect(() => spec({ Labels: { a: 1 } } as unknown as CreateBody)).toThrow("label a must be a string");
    expect(() => spec({ HostConfig: { Binds: "/a:/b" } } as unknown as CreateBody)).toThrow("HostConfig.Binds must be a list");
    expect(() => spec({ ExposedPorts: true } as unknown as CreateBody)).toThrow("ExposedPorts must be an object");
  });

  it("refuses what the agent does not do, clearly", () => {
    expect(spec({ Tty: true, OpenStdin: true, StdinOnce: true, AttachStdin: true }).config).toMatchObject({
      Tty: true,
      OpenStdin: true,
      StdinOnce: true,
      AttachStdin: true,
    });
    expect(spec({ StdinOnce: true }).config.StdinOnce).toBe(false); // only with OpenStdin
    expect(() => spec({ HostConfig: { Privileged: true } })).toThrow(NotSupportedError);
    expect(spec({ HostConfig: { NetworkMode: "mynet" } })).toMatchObject({
      networkMode: "user",
      networkRequests: [{ name: "mynet", aliases: [], ipv4Address: "" }],
    });
    expect(() => spec({ HostConfig: { NetworkMode: "my net" } })).toThrow(InvalidError);
    expect(() =>
      spec({ HostConfig: { NetworkMode: "mynet" }, NetworkingConfig: { EndpointsConfig: { mynet: { Links: ["x"] } } } }),
    ).toThrow(/EndpointsConfig.mynet.Links|links are not supported/);
    expect(() => spec({ HostConfig: { NetworkMode: "host" }, NetworkingConfig: { EndpointsConfig: { other: {} } } })).toThrow(
      /cannot be connected/,
    );
    expect(() => spec({ HostConfig: { NetworkMode: "container:abc" } })).toThrow(NotSupportedError);
    expect(() => spec({ HostConfig: { LogConfig: { Type: "syslog" } } })).toThrow(NotSupportedError);
    expect(() => parseCreateRequest({} as CreateBody, IMAGE)).toThrow(/Image is required/);
    expect(() => spec({ WorkingDir: "relative" })).toThrow(/absolute path/);
    expect(spec({ HostConfig: { NetworkMode: "none" } }).networkMode).toBe("none");
    expect(spec({ HostConfig: { NetworkMode: "host" } }).networkMode).toBe("host");
  });
});

function record(over: Partial<ContainerRecord> = {}): ContainerRecord {
  const s = spec();
  return {
    id: "a".repeat(64),
    name: "/web",
    created: "2024-05-01T10:00:00.000Z",
    image: "busybox",
    imageId: `sha256:${"b".repeat(64)}`,
    path: s.path,
    args: s.args,
    config: { ...s.config, Hostname: "aaaaaaaaaaaa" },
    hostConfig: s.hostConfig,
    networkMode: "bridge",
    ports: [],
    mounts: [],
    state: {
      status: "running",
      pid: 42,
      shimPid: 41,
      exitCode: 0,
      oomKilled: false,
      error: "",
      startedAt: "2024-05-01T10:00:01.000Z",
      finishedAt: null,
    },
    restartCount: 0,
    manualStop: false,
    network: null,
    ...over,
  };
}

describe("restart policy", () => {
  const withPolicy = (Name: string, MaximumRetryCount = 0, over: Partial<ContainerRecord> = {}) => {
    const r = record(over);
    r.hostConfig = { ...r.hostConfig, RestartPolicy: { Name: Name as "always", MaximumRetryCount } };
    return r;
  };
  const exited = (code: number) => ({ state: { ...record().state, status: "exited" as const, exitCode: code } });

  it("decides like Docker after an exit and at agent start", () => {
    expect(shouldRestart(withPolicy("no", 0, exited(1)), "exit")).toBe(false);
    expect(shouldRestart(withPolicy("", 0, exited(1)), "exit")).toBe(false);
    expect(shouldRestart(withPolicy("always", 0, exited(0)), "exit")).toBe(true);
    expect(shouldRestart(withPolicy("always", 0, { ...exited(0), manualStop: true }), "exit")).toBe(false);
    expect(shouldRestart(withPolicy("always", 0, { ...exited(0), manualStop: true }), "agent-start")).toBe(true);
    expect(shouldRestart(withPolicy("unless-stopped", 0, { ...exited(0), manualStop: true }), "agent-start")).toBe(false);
    expect(shouldRestart(withPolicy("unless-stopped", 0, exited(0)), "agent-start")).toBe(true);
    expect(shouldRestart(withPolicy("on-failure", 0, exited(0)), "exit")).toBe(false);
    expect(shouldRestart(withPolicy("on-failure", 0, { ...exited(1), restartCount: 99 }), "exit")).toBe(true);
    expect(shouldRestart(withPolicy("on-failure", 2, { ...exited(1), restartCount: 1 }), "exit")).toBe(true);
    expect(shouldRestart(withPolicy("on-failure", 2, { ...exited(1), restartCount: 2 }), "exit")).toBe(false);
  });

  it("backs off 100 ms doubling up to a minute, reset after 10 s of running", () => {
    expect([0, 1, 2, 3].map((n) => restartDelayMs(n, 50))).toEqual([100, 200, 400, 800]);
    expect(restartDelayMs(30, 50)).toBe(60_000);
    expect(restartDelayMs(30, 10_000)).toBe(100);
  });
});

describe("shim arguments", () => {
  const paths: ContainerPaths = {
    dir: "/r/c",
    config: "/r/c/config.json",
    stateDir: "/r/c/shim",
    upper: "/r/c/up",
    work: "/r/c/wk",
    log: "/r/c/log",
    etc: "/r/c/etc",
  };

  it("maps the container to flotilla-shim run options", () => {
    const r = record();
    r.hostConfig = { ...r.hostConfig, Memory: 16 << 20, NanoCpus: 1.5e9, PidsLimit: 20, CpuShares: 1, ReadonlyRootfs: true };
    const args = shimRunArgs({
      record: r,
      paths,
      lowerDirs: ["/l/top", "/l/base"],
      hostname: "h",
      netns: "/run/netns/x",
      user: "65534:65534",
      mounts: [
        { type: "bind", source: "/v", target: "/data", readOnly: true },
        { type: "tmpfs", target: "/t", sizeBytes: 4096 },
        { type: "bind", source: "/my-hosts", target: "/etc/hosts", readOnly: false },
      ],
      etcFiles: { hostname: "/e/hostname", hosts: "/e/hosts", resolvConf: "/e/resolv.conf" },
    });
    const opt = (name: string) => args.flatMap((a, i) => (a === name ? [args[i + 1]] : []));
    expect(opt("--rootfs-lower")).toEqual(["/l/top:/l/base"]);
    expect(opt("--state-dir")).toEqual(["/r/c/shim"]);
    expect(opt("--netns")).toEqual(["/run/netns/x"]);
    expect(opt("--env")).toEqual(["PATH=/bin", "A=image"]);
    expect(opt("--cwd")).toEqual(["/tmp"]);
    expect(opt("--user")).toEqual(["65534:65534"]);
    expect(opt("--memory")).toEqual([String(16 << 20)]);
    expect(opt("--cpu-quota")).toEqual(["150000"]);
    expect(opt("--cpu-period")).toEqual(["100000"]);
    expect(opt("--cpu-shares")).toEqual(["2"]);
    expect(opt("--pids")).toEqual(["20"]);
    expect(args).toContain("--readonly-rootfs");
    // the user's /etc/hosts bind replaces ours
    expect(opt("--mount")).toEqual([
      "bind:/e/hostname:/etc/hostname",
      "bind:/e/resolv.conf:/etc/resolv.conf",
      "bind:/v:/data:ro",
      "tmpfs:/t:4096",
      "bind:/my-hosts:/etc/hosts",
    ]);
    expect(args.slice(args.indexOf("--"))).toEqual(["--", "sh"]);
  });

  it("translates signal names", () => {
    expect(signalNumber("TERM")).toBe(15);
    expect(signalNumber("SIGKILL")).toBe(9);
    expect(signalNumber("hup")).toBe(1);
    expect(signalNumber("10")).toBe(10);
    expect(() => signalNumber("NOPE")).toThrow(/Invalid signal/);
    expect(() => signalNumber("0")).toThrow(InvalidError);
  });
});

describe("listing", () => {
  const list = [
    record({
      id: `1${"0".repeat(63)}`,
      name: "/a",
      created: "2024-01-01T00:00:00Z",
      config: { ...record().config, Labels: { tier: "front" } },
    }),
    record({
      id: `2${"0".repeat(63)}`,
      name: "/b",
      created: "2024-01-02T00:00:00Z",
      state: { ...record().state, status: "exited", exitCode: 3 },
    }),
    record({ id: `3${"0".repeat(63)}`, name: "/c", created: "2024-01-03T00:00:00Z", state: { ...record().state, status: "created" } }),
  ];
  const names = (all: boolean, filters: Record<string, string[]> = {}, limit?: number) =>
    selectContainers(list, { all, limit, filters: new Map(Object.entries(filters)) }, (c, ref) => c.image === ref).map((c) => c.name);

  it("lists running ones by default, everything with all, newest first", () => {
    expect(names(false)).toEqual(["/a"]);
    expect(names(true)).toEqual(["/c", "/b", "/a"]);
    expect(names(false, {}, 2)).toEqual(["/c", "/b"]);
  });

  it("filters by status, label, name, id, exited, ancestor", () => {
    expect(names(false, { status: ["exited", "created"] })).toEqual(["/c", "/b"]);
    expect(names(true, { label: ["tier=front"] })).toEqual(["/a"]);
    expect(names(true, { name: ["^/b$"] })).toEqual(["/b"]);
    expect(names(true, { id: ["3"] })).toEqual(["/c"]);
    expect(names(true, { exited: ["3"] })).toEqual(["/b"]);
    expect(names(true, { ancestor: ["other"] })).toEqual([]);
    expect(() => names(true, { status: ["sleepy"] })).toThrow(InvalidError);
  });
});

describe("Docker shapes", () => {
  it("renders durations and the ps status column as Docker does", () => {
    expect(humanDuration(500)).toBe("Less than a second");
    expect(humanDuration(1000)).toBe("1 second");
    expect(humanDuration(45_000)).toBe("45 seconds");
    expect(humanDuration(90_000)).toBe("About a minute");
    expect(humanDuration(5 * 60_000)).toBe("5 minutes");
    expect(humanDuration(60 * 60_000)).toBe("About an hour");
    expect(humanDuration(3 * 3600_000)).toBe("3 hours");
    expect(humanDuration(3 * 86400_000)).toBe("3 days");
    const now = Date.parse("2024-05-01T10:00:11Z");
    expect(statusText(record(), now)).toBe("Up 10 seconds");
    expect(
      statusText(record({ state: { ...record().state, status: "exited", exitCode: 2, finishedAt: "2024-05-01T10:00:06Z" } }), now),
    ).toBe("Exited (2) 5 seconds ago");
    expect(statusText(record({ state: { ...record().state, status: "created" } }), now)).toBe("Created");
  });

  it("shows published and exposed ports while running", () => {
    const r = record({
      network: {
        mode: "bridge",
        ipAddress: "198.18.0.2",
        gateway: "198.18.0.1",
        macAddress: "02:42:c6:12:00:02",
        prefixLen: 24,
        ports: [{ containerPort: 80, protocol: "tcp", hostIp: "", hostPort: 8000 }],
      },
    });
    r.config = { ...r.config, ExposedPorts: { "80/tcp": {}, "8080/tcp": {} } };
    const summary = toContainerSummary(r, (n) => `/v/${n}`);
    expect(summary.Ports).toEqual([
      { IP: "0.0.0.0", PrivatePort: 80, PublicPort: 8000, Type: "tcp" },
      { PrivatePort: 8080, Type: "tcp" },
    ]);
    expect(summary).toMatchObject({ Names: ["/web"], Command: "sh", State: "running", Created: Date.parse(r.created) / 1000 });
    const inspect = toContainerInspect(r, { root: "/r", logPath: "/r/log", volumePath: (n) => `/v/${n}` });
    expect(inspect.NetworkSettings).toMatchObject({
      IPAddress: "198.18.0.2",
      Gateway: "198.18.0.1",
      IPPrefixLen: 24,
      Ports: { "80/tcp": [{ HostIp: "0.0.0.0", HostPort: "8000" }], "8080/tcp": null },
    });
    expect(inspect.State).toMatchObject({
      Status: "running",
      Running: true,
      Pid: 42,
      StartedAt: "2024-05-01T10:00:01.000Z",
      FinishedAt: "0001-01-01T00:00:00Z",
    });
    const stopped = toContainerInspect(
      { ...r, state: { ...r.state, status: "exited" } },
      { root: "/r", logPath: "/r/log", volumePath: (n) => n },
    );
    expect(stopped.State.Pid).toBe(0);
    expect(stopped.NetworkSettings.Ports["80/tcp"]).toBeNull();
  });
});

describe("logs", () => {
  it("frames output in Docker's multiplexed format", () => {
    const f = frame("stderr", "hi\n");
    expect([...f.subarray(0, 8)]).toEqual([2, 0, 0, 0, 0, 0, 0, 3]);
    expect(f.subarray(8).toString()).toBe("hi\n");
    expect(frame("stdout", Buffer.alloc(300))[0]).toBe(1);
    expect(frame("stdout", Buffer.alloc(300)).readUInt32BE(4)).toBe(300);
  });

  it("parses json-file records, skipping torn lines, and filters them", () => {
    const recs = parseRecords([
      '{"log":"a\\n","stream":"stdout","time":"2024-05-01T10:00:00.000000001Z"}',
      '{"log":"b\\n","stream":"stderr","time":"2024-05-01T10:00:01.5Z"}',
      '{"log":"torn',
      "",
    ]);
    expect(recs.map((r) => r.log)).toEqual(["a\n", "b\n"]);
    expect(timeNano("2024-05-01T10:00:01.5Z") - timeNano("2024-05-01T10:00:01Z")).toBe(5e8);
    const text = (q: Parameters<typeof renderRecords>[1]) =>
      renderRecords(recs, q)
        .map((b) => b.subarray(8).toString())
        .join("");
    expect(text({ stdout: true, stderr: true, timestamps: false })).toBe("a\nb\n");
    expect(text({ stdout: false, stderr: true, timestamps: true })).toBe("2024-05-01T10:00:01.5Z b\n");
    expect(text({ stdout: true, stderr: true, timestamps: false, sinceNano: timeNano("2024-05-01T10:00:01Z") })).toBe("b\n");
    expect(text({ stdout: true, stderr: true, timestamps: false, untilNano: timeNano("2024-05-01T10:00:01Z") })).toBe("a\n");
  });
});
