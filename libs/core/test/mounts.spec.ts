import { describe, expect, it } from "vitest";
import { addedBindSources, affectsTasks, DomainError, normalizeServiceSpec, parseMountFlag, type Mount } from "../src";
import { makeSpec } from "./fixtures";

function refusal(fn: () => unknown): { field: string; message: string } {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(DomainError);
    return { field: String((e as DomainError).details.field), message: (e as Error).message };
  }
  throw new Error("expected a refusal");
}

const spec = (mounts: unknown) => () => normalizeServiceSpec({ name: "db", image: "busybox", mounts: mounts as Mount[] });

describe("parseMountFlag", () => {
  it.each([
    ["type=volume,source=data,target=/data", { type: "volume", source: "data", target: "/data", readOnly: false }],
    ["source=data,target=/data,readonly", { type: "volume", source: "data", target: "/data", readOnly: true }],
    ["src=data,dst=/data,ro=false,volume-driver=local", { type: "volume", source: "data", target: "/data", readOnly: false }],
    ["type=bind,source=/srv/www,destination=/www,ro=1", { type: "bind", source: "/srv/www", target: "/www", readOnly: true }],
    ["type=tmpfs,target=/cache,tmpfs-size=64m", { type: "tmpfs", target: "/cache", readOnly: false, tmpfsSizeBytes: 64 * 1024 ** 2 }],
  ])("reads %s", (flag, mount) => {
    expect(parseMountFlag(flag)).toEqual(mount);
  });

  it.each([
    ["type=volume,source=data", /target is required/],
    ["type=nfs,target=/x", /mount type must be one of volume, bind, tmpfs/],
    ["source=data,target=/data,volume-driver=rexray", /volume driver "rexray" is not supported/],
    ["type=bind,source=/a,target=/b,bind-propagation=shared", /mount option "bind-propagation" is not supported/],
    ["source=data,target=/data,readonly=maybe", /readonly must be true or false/],
    ["type=tmpfs,target=/c,tmpfs-size=lots", /invalid memory size/],
  ])("refuses %s", (flag, message) => {
    expect(() => parseMountFlag(flag, "--mount")).toThrow(message);
    expect(refusal(() => parseMountFlag(flag, "--mount")).field).toBe("--mount");
  });
});

describe("mounts in a service spec", () => {
  it("defaults to none and to read-write, and drops a trailing slash of the target", () => {
    expect(normalizeServiceSpec({ name: "db", image: "busybox" }).mounts).toEqual([]);
    expect(spec([{ type: "volume", source: "data", target: "/data/" }])().mounts).toEqual([
      { type: "volume", source: "data", target: "/data", readOnly: false },
    ]);
  });

  it.each([
    [[{ type: "volume", source: "data", target: "data" }], "mounts[0].target", /mount target must be an absolute path/],
    [[{ type: "volume", source: "data", target: "/" }], "mounts[0].target", /cannot be \//],
    [[{ type: "volume", source: "data", target: "/a/../etc" }], "mounts[0].target", /must not contain \. or \.\./],
    [[{ type: "volume", source: "data", target: "/a:b" }], "mounts[0].target", /must not contain ','/],
    [[{ type: "volume", target: "/data" }], "mounts[0].source", /needs a source/],
    [[{ type: "volume", source: "../etc", target: "/data" }], "mounts[0].source", /invalid volume name/],
    [[{ type: "bind", source: "srv", target: "/data" }], "mounts[0].source", /bind source must be an absolute path/],
    [[{ type: "tmpfs", source: "x", target: "/c" }], "mounts[0].source", /has no source/],
    [[{ type: "tmpfs", target: "/c", tmpfsSizeBytes: -1 }], "mounts[0].tmpfsSizeBytes", /tmpfs size/],
    [[{ type: "volume", source: "d", target: "/c", tmpfsSizeBytes: 5 }], "mounts[0].tmpfsSizeBytes", /tmpfs mounts only/],
    [[{ type: "tmpfs", target: "/c", readOnly: true }], "mounts[0].readOnly", /read-only tmpfs/],
    [[{ type: "nfs", target: "/c" }], "mounts[0].type", /mount type/],
    [
      [
        { type: "volume", source: "a", target: "/data" },
        { type: "tmpfs", target: "/data/" },
      ],
      "mounts[1].target",
      /used twice/,
    ],
    ["x", "mounts", /must be a list/],
  ])("refuses %j naming %s", (mounts, field, message) => {
    const r = refusal(spec(mounts));
    expect(r.field).toBe(field);
    expect(r.message).toMatch(message);
  });

  it("a mount change replaces the tasks; the same mounts do not", () => {
    const a = normalizeServiceSpec({ ...makeSpec(), mounts: [{ type: "volume", source: "data", target: "/data" }] });
    const b = normalizeServiceSpec({ ...a, mounts: [{ type: "volume", source: "data", target: "/data", readOnly: true }] });
    expect(affectsTasks(a, b)).toBe(true);
    expect(affectsTasks(a, normalizeServiceSpec({ ...a }))).toBe(false);
  });
});

describe("addedBindSources", () => {
  const bind = (source: string, target = "/x", readOnly = false): Mount => ({ type: "bind", source, target, readOnly });
  const vol: Mount = { type: "volume", source: "v", target: "/v", readOnly: false };
  it.each([
    [undefined, [vol], []],
    [undefined, [bind("/etc")], ["/etc"]],
    [[bind("/srv")], [bind("/srv"), vol], []],
    [[bind("/srv", "/x", true)], [bind("/srv", "/x", false)], ["/srv"]],
    [[bind("/srv")], [bind("/srv", "/y")], ["/srv"]],
    [[bind("/srv")], [bind("/")], ["/"]],
  ])("from %j to %j adds %j", (current, next, added) => {
    expect(addedBindSources(current ? { mounts: current } : undefined, { mounts: next })).toEqual(added);
  });
});

describe("hostname, user, workdir and container labels", () => {
  it("default to the image's and reach the tasks when changed", () => {
    const a = normalizeServiceSpec({ name: "web", image: "busybox" });
    expect(a).toMatchObject({ hostname: "", user: "", workdir: "", containerLabels: {} });
    for (const change of [{ hostname: "web-1" }, { user: "1000:1000" }, { workdir: "/app" }, { containerLabels: { a: "b" } }]) {
      expect(affectsTasks(a, normalizeServiceSpec({ ...a, ...change })), JSON.stringify(change)).toBe(true);
    }
  });

  it.each([
    [{ hostname: "web_1" }, "hostname"],
    [{ hostname: "{{.Task.Slot}}" }, "hostname"],
    [{ user: "a b" }, "user"],
    [{ user: "a:b:c" }, "user"],
    [{ workdir: "app" }, "workdir"],
    [{ containerLabels: { "": "x" } }, "containerLabels."],
  ])("refuses %j naming %s", (input, field) => {
    expect(refusal(() => normalizeServiceSpec({ name: "web", image: "busybox", ...input })).field).toBe(field);
  });
});
