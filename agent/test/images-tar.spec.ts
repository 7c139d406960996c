import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync, mkdirSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { readTar, TarFormatError, type TarEntry } from "../src/images/tar-reader";
import { chunked, header, makeTar } from "./images-tar-fixture";

async function entries(data: Buffer | AsyncIterable<Buffer>, readBodies = true): Promise<Array<TarEntry & { content: string }>> {
  const out: Array<TarEntry & { content: string }> = [];
  for await (const { entry, body } of readTar(Buffer.isBuffer(data) ? chunked(data) : data)) {
    let content = "";
    if (readBodies) for await (const c of body) content += c.toString();
    out.push({ ...entry, content });
  }
  return out;
}

describe("readTar", () => {
  it("reads every entry type with its metadata, across odd chunk boundaries", async () => {
    const tar = makeTar([
      { path: "./", type: "dir", mode: 0o755 },
      { path: "./bin/", type: "dir", mode: 0o700, uid: 1, gid: 2 },
      { path: "./bin/tool", body: "x".repeat(1000), mode: 0o4755, uid: 1000, gid: 1001, mtime: 1600000000 },
      { path: "./bin/link", type: "hardlink", linkpath: "./bin/tool" },
      { path: "./bin/sh", type: "symlink", linkpath: "/bin/busybox" },
      { path: "./dev/null", type: "char", devmajor: 1, devminor: 3, mode: 0o666 },
      { path: "./dev/sda", type: "block", devmajor: 8, devminor: 0 },
      { path: "./run/fifo", type: "fifo" },
      { path: "./empty", body: "" },
    ]);
    const got = await entries(tar);
    expect(got.map((e) => [e.path, e.type])).toEqual([
      [".", "directory"],
      ["./bin", "directory"],
      ["./bin/tool", "file"],
      ["./bin/link", "hardlink"],
      ["./bin/sh", "symlink"],
      ["./dev/null", "char"],
      ["./dev/sda", "block"],
      ["./run/fifo", "fifo"],
      ["./empty", "file"],
    ]);
    expect(got[2]).toMatchObject({ mode: 0o4755, uid: 1000, gid: 1001, mtime: 1600000000, size: 1000, content: "x".repeat(1000) });
    expect(got[1]).toMatchObject({ mode: 0o700, uid: 1, gid: 2 });
    expect(got[3]!.linkpath).toBe("./bin/tool");
    expect(got[4]!.linkpath).toBe("/bin/busybox");
    expect(got[5]).toMatchObject({ devmajor: 1, devminor: 3, mode: 0o666 });
  });

  it("skips bodies the consumer leaves unread", async () => {
    const tar = makeTar([
      { path: "a", body: "A".repeat(700) },
      { path: "b", body: "B" },
    ]);
    const got = await entries(tar, false);
    expect(got.map((e) => e.path)).toEqual(["a", "b"]);
  });

  it("applies pax headers: long paths, fractional mtimes, big ids, binary xattrs", async () => {
    const long = `${"d/".repeat(80)}file`;
    const tar = makeTar([
      {
        path: long,
        body: "hi",
        pax: {
          mtime: "1600000000.5",
          uid: "3000000",
          "SCHILY.xattr.security.capability": Buffer.from([1, 0, 0, 2, 0x20, 0, 0, 0]),
          "SCHILY.xattr.user.note": "ünï",
        },
      },
      { path: "next", body: "n" },
    ]);
    const [first, second] = await entries(tar);
    expect(first!.path).toBe(long);
    expect(first!.mtime).toBe(1600000000.5);
    expect(first!.uid).toBe(3000000);
    expect(first!.xattrs["security.capability"]).toEqual(Buffer.from([1, 0, 0, 2, 0x20, 0, 0, 0]));
    expect(first!.xattrs["user.note"]!.toString()).toBe("ünï");
    // pax `x` records apply to one entry only.
    expect(second).toMatchObject({ path: "next", mtime: 1_700_000_000, xattrs: {} });
  });

  it("reads GNU long names", async () => {
    const long = `${"x".repeat(150)}/y`;
    const [e] = await entries(makeTar([{ path: long, body: "1", gnuLongName: true }]));
    expect(e!.path).toBe(long);
  });

  it("reads what GNU tar writes (ustar prefix, long names, hardlinks)", async () => {
    const dir = mkdtempSync(join(tmpdir(), "flotilla-tar-"));
    try {
      // > 100 bytes but within ustar's 155-byte prefix + 100-byte name.
      const medium = `${"p".repeat(60)}/${"q".repeat(60)}`;
      mkdirSync(join(dir, "src", medium), { recursive: true });
      writeFileSync(join(dir, "src", medium, "m"), "medium");
      // Only GNU and pax can store this one.
      const deep = `${"a".repeat(90)}/${"b".repeat(90)}`;
      mkdirSync(join(dir, "deep", deep), { recursive: true });
      writeFileSync(join(dir, "deep", deep, "c".repeat(120)), "deep");
      writeFileSync(join(dir, "src", "f"), "f");
      execFileSync("ln", [join(dir, "src", "f"), join(dir, "src", "g")]);
      symlinkSync("f", join(dir, "src", "s"));
      for (const format of ["gnu", "posix", "ustar"]) {
        const extra = format === "ustar" ? [] : ["-C", join(dir, "deep"), "."];
        const tar = execFileSync("tar", [`--format=${format}`, "-C", join(dir, "src"), "-cf", "-", ".", ...extra], { maxBuffer: 1 << 24 });
        const got = await entries(tar);
        const byPath = new Map(got.map((e) => [e.path.replace(/^\.\//, ""), e]));
        if (format !== "ustar") expect(byPath.get(`${deep}/${"c".repeat(120)}`)?.content).toBe("deep");
        expect(byPath.get(`${medium}/m`)?.content).toBe("medium");
        expect(byPath.get("f")?.content).toBe("f");
        expect(byPath.get("g")?.type).toBe("hardlink");
        expect(byPath.get("s")).toMatchObject({ type: "symlink", linkpath: "f" });
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("consumes the whole stream, trailing padding included (diffIDs hash all of it)", async () => {
    const tar = Buffer.concat([makeTar([{ path: "a", body: "a" }]), Buffer.alloc(8192)]);
    let consumed = 0;
    async function* counting() {
      for await (const c of chunked(tar)) {
        consumed += c.length;
        yield c;
      }
    }
    await entries(counting());
    expect(consumed).toBe(tar.length);
  });

  it("rejects a corrupt header checksum", async () => {
    const tar = makeTar([{ path: "a", body: "a" }]);
    tar[0] = "b".charCodeAt(0);
    await expect(entries(tar)).rejects.toThrow(TarFormatError);
  });

  it("rejects a truncated body", async () => {
    const tar = makeTar([{ path: "a", body: "x".repeat(2000) }], { end: false }).subarray(0, 1500);
    await expect(entries(tar)).rejects.toThrow(/truncated/);
  });

  it("reads base-256 sizes", async () => {
    const h = header("big", "0", 0);
    // Size field in base-256: 0x80 marker then big-endian 5.
    h.fill(0, 124, 136);
    h[124] = 0x80;
    h[135] = 5;
    h.fill(0x20, 148, 156);
    let sum = 0;
    for (const b of h) sum += b;
    h.write(sum.toString(8).padStart(6, "0") + "\0 ", 148, 8, "latin1");
    const body = Buffer.alloc(512);
    body.write("12345");
    const [e] = await entries(Buffer.concat([h, body, Buffer.alloc(1024)]));
    expect(e).toMatchObject({ path: "big", size: 5, content: "12345" });
  });

  it("ends quietly on an empty stream", async () => {
    expect(await entries(Buffer.alloc(0))).toEqual([]);
  });
});
