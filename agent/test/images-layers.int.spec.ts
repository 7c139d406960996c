// Applying layer tars on the real file system, as root: whiteouts become 0/0 character devices,
// opaque markers become trusted.overlay.opaque=y, metadata is kept, and nothing escapes the layer.
import * as fs from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { InvalidError } from "@flotilla/core";
import { gzipSync } from "node:zlib";
import { NotSupportedError } from "@flotilla/core";
import { sha256Of } from "../src/images/digest";
import { DigestMismatchError, LayerInvalidError } from "../src/images/errors";
import { LayerStore } from "../src/images/layer-store";
import { applyLayer } from "../src/images/layer-apply";
import { scanLayer } from "../src/images/layer-scan";
import type { XattrTool } from "../src/images/special-files";
import { hasCommand, readXattr } from "./images-fs-helpers";
import { chunked, makeTar, type TarSpec } from "./images-tar-fixture";

const isRoot = process.getuid?.() === 0;

const xattr = readXattr;
const hasXattr = (path: string, name: string) => readXattr(path, name) !== undefined;
// Test each xattr helper this host has; the store picks one of them itself.
const xattrTools = (["setfattr", "python3"] as const).filter(hasCommand);

describe.skipIf(!isRoot)("applyLayer (root, real file system)", () => {
  let work: string;
  let outside: string;
  beforeEach(() => {
    work = fs.mkdtempSync(join(tmpdir(), "flotilla-layer-"));
    outside = fs.mkdtempSync(join(tmpdir(), "flotilla-outside-"));
  });
  afterEach(() => {
    fs.rmSync(work, { recursive: true, force: true });
    fs.rmSync(outside, { recursive: true, force: true });
  });

  async function apply(entries: TarSpec[], xattrTool?: XattrTool) {
    const dest = fs.mkdtempSync(join(work, "l-"));
    const result = await applyLayer(chunked(makeTar(entries)), dest, { layer: "sha256:test", xattrTool });
    return { dest, result };
  }

  it("keeps modes, owners, mtimes, symlinks, hardlinks, devices and FIFOs", async () => {
    const { dest, result } = await apply([
      { path: "./", type: "dir", mode: 0o755 },
      { path: "bin/", type: "dir", mode: 0o711, uid: 5, gid: 6, mtime: 1500000000 },
      { path: "bin/tool", body: "#!/bin/sh\n", mode: 0o4755, uid: 1000, gid: 1001, mtime: 1600000000 },
      { path: "bin/tool-again", type: "hardlink", linkpath: "bin/tool" },
      { path: "bin/sh", type: "symlink", linkpath: "/bin/busybox", uid: 7, gid: 8, mtime: 1400000000 },
      { path: "dev/null", type: "char", devmajor: 1, devminor: 3, mode: 0o666 },
      { path: "run/pipe", type: "fifo", mode: 0o600 },
      { path: "tmp/", type: "dir", mode: 0o1777 },
      { path: "etc/shadow", body: "x", mode: 0o640, gid: 42 },
    ]);
    const st = (p: string) => fs.lstatSync(join(dest, p));
    expect(st("bin").mode & 0o7777).toBe(0o711);
    expect([st("bin").uid, st("bin").gid, st("bin").mtimeMs / 1000]).toEqual([5, 6, 1500000000]);
    expect(st("bin/tool").mode & 0o7777).toBe(0o4755); // setuid survives chown
    expect([st("bin/tool").uid, st("bin/tool").gid, st("bin/tool").mtimeMs / 1000]).toEqual([1000, 1001, 1600000000]);
    expect(st("bin/tool-again").ino).toBe(st("bin/tool").ino);
    expect(st("bin/tool").nlink).toBe(2);
    expect(st("bin/sh").isSymbolicLink()).toBe(true);
    expect(fs.readlinkSync(join(dest, "bin/sh"))).toBe("/bin/busybox"); // verbatim: resolved in the container
    expect([st("bin/sh").uid, st("bin/sh").gid, st("bin/sh").mtimeMs / 1000]).toEqual([7, 8, 1400000000]);
    expect(st("dev/null").isCharacterDevice()).toBe(true);
    expect(st("dev/null").rdev).toBe(fs.statSync("/dev/null").rdev);
    expect(st("run/pipe").isFIFO()).toBe(true);
    expect(st("tmp").mode & 0o7777).toBe(0o1777);
    expect([st("etc/shadow").mode & 0o7777, st("etc/shadow").gid]).toEqual([0o640, 42]);
    expect(st("").mode & 0o7777).toBe(0o755);
    expect(result.size).toBe("#!/bin/sh\n".length + 1);
  });

  it.each<XattrTool>(xattrTools)(
    "turns whiteouts into 0/0 char devices and opaque markers into trusted.overlay.opaque=y (%s)",
    async (tool) => {
      const { dest, result } = await apply(
        [
          { path: "etc/", type: "dir" },
          { path: "etc/.wh.motd", uid: 3, gid: 4 },
          { path: ".wh.home" },
          { path: "opt/data with space/.wh..wh..opq" },
          { path: "opt/data with space/c.txt", body: "c" },
          { path: "var/.wh..wh.plnk/123", body: "aufs" },
        ],
        tool,
      );
      for (const p of ["etc/motd", "home"]) {
        const s = fs.lstatSync(join(dest, p));
        expect(s.isCharacterDevice()).toBe(true);
        expect(s.rdev).toBe(0);
      }
      expect(fs.lstatSync(join(dest, "etc/motd")).uid).toBe(3);
      expect(xattr(join(dest, "opt/data with space"), "trusted.overlay.opaque")).toBe("y");
      expect(hasXattr(join(dest, "etc"), "trusted.overlay.opaque")).toBe(false);
      expect(fs.existsSync(join(dest, "etc/.wh.motd"))).toBe(false);
      expect(fs.existsSync(join(dest, "var/.wh..wh.plnk"))).toBe(false);
      expect(result).toMatchObject({ whiteouts: 2, opaqueDirs: 1 });
    },
  );

  it.each<XattrTool>(xattrTools)("carries xattrs from pax headers, skips refused ones, never sets overlay's own (%s)", async (tool) => {
    const { dest } = await apply(
      [
        // Linux refuses user.* on symlinks: skipped, as Docker does, without failing the layer.
        { path: "s", type: "symlink", linkpath: "f", pax: { "SCHILY.xattr.user.refused": "x" } },
        { path: "f", body: "x", pax: { "SCHILY.xattr.user.origin": "layer", "SCHILY.xattr.trusted.overlay.opaque": "y" } },
        { path: "d/", type: "dir", pax: { "SCHILY.xattr.trusted.overlay.redirect": "/elsewhere", "SCHILY.xattr.trusted.note": "kept" } },
      ],
      tool,
    );
    expect(xattr(join(dest, "f"), "user.origin")).toBe("layer");
    expect(xattr(join(dest, "d"), "trusted.note")).toBe("kept");
    expect(hasXattr(join(dest, "s"), "user.refused")).toBe(false);
    expect(hasXattr(join(dest, "f"), "trusted.overlay.opaque")).toBe(false);
    expect(hasXattr(join(dest, "d"), "trusted.overlay.redirect")).toBe(false);
  });

  it("lets a later entry replace an earlier one; a directory replacing a whiteout hides the lower one", async () => {
    const { dest } = await apply([
      { path: "a", body: "first" },
      { path: "a", body: "second" },
      { path: "d/old", body: "x" },
      { path: "d", body: "now a file" },
      { path: ".wh.cfg" },
      { path: "cfg/", type: "dir" },
      { path: "cfg/new", body: "n" },
      { path: ".wh.lib" },
      { path: "lib/x/y", body: "no directory entries before me" },
    ]);
    expect(xattr(join(dest, "lib"), "trusted.overlay.opaque")).toBe("y");
    expect(fs.readFileSync(join(dest, "lib/x/y"), "utf8")).toBe("no directory entries before me");
    expect(fs.readFileSync(join(dest, "a"), "utf8")).toBe("second");
    expect(fs.readFileSync(join(dest, "d"), "utf8")).toBe("now a file");
    expect(fs.lstatSync(join(dest, "cfg")).isDirectory()).toBe(true);
    expect(xattr(join(dest, "cfg"), "trusted.overlay.opaque")).toBe("y");
  });

  it("ignores a whiteout for a name the layer itself provides", async () => {
    const { dest } = await apply([{ path: "keep", body: "mine" }, { path: ".wh.keep" }]);
    expect(fs.readFileSync(join(dest, "keep"), "utf8")).toBe("mine");
  });

  it.each<[string, TarSpec[], RegExp]>([
    ["a ../ path", [{ path: "../escape", body: "x" }], /escapes the layer root: \.\.\/escape/],
    ["a nested ../ path", [{ path: "a/../../escape", body: "x" }], /escapes the layer root/],
    ["a ../ whiteout", [{ path: "../.wh.x" }], /escapes the layer root/],
    ["a hardlink out of the layer", [{ path: "h", type: "hardlink", linkpath: "../../etc/passwd" }], /escapes the layer root/],
    ["a hardlink to a host file", [{ path: "h", type: "hardlink", linkpath: "/etc/passwd" }], /target is not a file of this layer/],
    [
      "a hardlink to a directory",
      [
        { path: "d/", type: "dir" },
        { path: "h", type: "hardlink", linkpath: "d" },
      ],
      /not a file of this layer/,
    ],
    ["a file for the layer root", [{ path: ".", body: "x" }], /layer root is not a directory/],
  ])("refuses %s", async (_name, entries, message) => {
    const err = await apply(entries).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(LayerInvalidError);
    expect(err).toBeInstanceOf(InvalidError);
    expect((err as Error).message).toMatch(message);
  });

  it.each([
    ["an absolute symlink", (dir: string) => dir],
    ["a relative symlink", () => "../../../../../../../../../../../.."],
  ])("never writes through %s (escape on extraction)", async (_name, target) => {
    const t = target(outside);
    const rel = t.startsWith("/") ? "" : outside.slice(1);
    for (const entries of [
      [{ path: "evil", type: "symlink", linkpath: t } as TarSpec, { path: `evil/${rel ? `${rel}/` : ""}pwned`, body: "gotcha" }],
      [{ path: "evil", type: "symlink", linkpath: t } as TarSpec, { path: `evil/${rel ? `${rel}/` : ""}.wh.x` }],
      [{ path: "evil", type: "symlink", linkpath: t } as TarSpec, { path: `evil/${rel ? `${rel}/` : ""}sub/.wh..wh..opq` }],
      [{ path: "evil", type: "symlink", linkpath: t } as TarSpec, { path: `evil/${rel ? `${rel}/` : ""}dir`, type: "dir" } as TarSpec],
    ]) {
      await expect(apply(entries)).rejects.toThrow(/is a symlink; refusing to write through it/);
    }
    expect(fs.readdirSync(outside)).toEqual([]);
  });

  it("scanLayer (the check a pull leaves for after it) accepts, refuses and sizes exactly as applyLayer", async () => {
    const cases: TarSpec[][] = [
      [
        { path: "a", body: "first" },
        { path: "a", body: "second!" },
        { path: "d/old", body: "x" },
        { path: "d", body: "now a file" },
      ],
      [
        { path: ".wh.cfg" },
        { path: "cfg/", type: "dir" },
        { path: "cfg/new", body: "n" },
        { path: ".wh.lib" },
        { path: "lib/x/y", body: "yy" },
      ],
      [{ path: "keep", body: "mine" }, { path: ".wh.keep" }, { path: "sub/.wh..wh..opq" }, { path: ".wh..wh.plnk/1", body: "aufs" }],
      [
        { path: "f", body: "data" },
        { path: "h", type: "hardlink", linkpath: "f" },
        { path: "s", type: "symlink", linkpath: "/etc" },
      ],
      [
        { path: "d/x", body: "x" },
        { path: "d", type: "symlink", linkpath: "/" },
        { path: "d/x", body: "through" },
      ],
      [
        { path: "d/x", body: "x" },
        { path: "d", body: "file" },
        { path: "d/", type: "dir" },
        { path: "h", type: "hardlink", linkpath: "d/x" },
      ],
      [{ path: "../escape", body: "x" }],
      [{ path: "a/../../escape", body: "x" }],
      [{ path: "../.wh.x" }],
      [{ path: "h", type: "hardlink", linkpath: "../../etc/passwd" }],
      [{ path: "h", type: "hardlink", linkpath: "/etc/passwd" }],
      [
        { path: "d/", type: "dir" },
        { path: "h", type: "hardlink", linkpath: "d" },
      ],
      [{ path: ".", body: "x" }],
      [
        { path: "evil", type: "symlink", linkpath: outside },
        { path: "evil/pwned", body: "gotcha" },
      ],
      [{ path: "evil", type: "symlink", linkpath: outside }, { path: "evil/sub/.wh..wh..opq" }],
      [
        { path: "f", body: "file" },
        { path: "f/under", body: "x" },
      ],
    ];
    for (const entries of cases) {
      const tarBytes = makeTar(entries);
      const applied = await apply(entries).then(
        ({ result }) => ({ size: result.size, entries: result.entries }),
        (e: unknown) => (e as Error).message,
      );
      const scanned = await scanLayer(chunked(tarBytes), "sha256:test").then(
        (r) => ({ size: r.size, entries: r.entries }),
        (e: unknown) => (e as Error).message,
      );
      expect(scanned, JSON.stringify(entries)).toEqual(applied);
    }
    // An archive ending inside a file's body: the same refusal, as a bad layer (a 400, not a 500).
    const truncated = makeTar([{ path: "f", body: "x".repeat(4096) }]).subarray(0, 1024);
    const dest = fs.mkdtempSync(join(work, "l-"));
    const byApply = await applyLayer(chunked(truncated), dest, { layer: "sha256:test" }).catch((e: unknown) => e);
    const byScan = await scanLayer(chunked(truncated), "sha256:test").catch((e: unknown) => e);
    expect(byApply).toBeInstanceOf(LayerInvalidError);
    expect(byScan).toBeInstanceOf(LayerInvalidError);
    for (const err of [byApply, byScan])
      expect((err as Error).message).toMatch(/^layer sha256:test: not a valid tar archive: truncated archive/);
    expect(fs.readdirSync(outside)).toEqual([]);
  });

  it("replaces a symlink by a file instead of following it", async () => {
    const victim = join(outside, "victim");
    fs.writeFileSync(victim, "original");
    const { dest } = await apply([
      { path: "f", type: "symlink", linkpath: victim },
      { path: "f", body: "replaced" },
    ]);
    expect(fs.readFileSync(victim, "utf8")).toBe("original");
    expect(fs.lstatSync(join(dest, "f")).isFile()).toBe(true);
  });

  it("refuses what is not a tar", async () => {
    const dest = fs.mkdtempSync(join(work, "l-"));
    const garbage = Buffer.alloc(2048, 0x41);
    await expect(applyLayer(chunked(garbage), dest, { layer: "sha256:junk" })).rejects.toThrow(
      /layer sha256:junk: not a valid tar archive/,
    );
  });
});

describe.skipIf(!isRoot)("LayerStore.unpack", () => {
  let root: string;
  let store: LayerStore;
  beforeEach(async () => {
    root = fs.mkdtempSync(join(tmpdir(), "flotilla-layerstore-"));
    store = new LayerStore(root);
    await store.init();
  });
  afterEach(() => fs.rmSync(root, { recursive: true, force: true }));

  const tar = makeTar([{ path: "hello.txt", body: "hello" }]);
  const diffId = sha256Of(tar);

  it.each([
    ["gzip", gzipSync(tar)],
    ["uncompressed", tar],
  ])("unpacks a %s layer into layers/<diffID>, checking the diffID", async (_kind, blob) => {
    const digest = sha256Of(blob);
    await store.writeBlob(digest, blob);
    const seen: number[] = [];
    const result = await store.unpack(digest, diffId, (current, total) => {
      expect(total).toBe(blob.length);
      seen.push(current);
    });
    expect(result.size).toBe(5);
    expect(seen.at(-1)).toBe(blob.length);
    expect(fs.readFileSync(join(store.layerPath(diffId), "hello.txt"), "utf8")).toBe("hello");
    expect(fs.statSync(store.layerPath(diffId)).mode & 0o777).toBe(0o755);
    expect(fs.readdirSync(store.tmpDir)).toEqual([]);
  });

  it("refuses a layer whose content does not hash to the config's diffID, and keeps nothing", async () => {
    const blob = gzipSync(tar);
    const digest = sha256Of(blob);
    await store.writeBlob(digest, blob);
    const claimed = sha256Of("something else");
    await expect(store.unpack(digest, claimed)).rejects.toThrow(DigestMismatchError);
    await expect(store.unpack(digest, claimed)).rejects.toThrow(
      `digest mismatch for uncompressed layer ${digest}: expected ${claimed}, got ${diffId}`,
    );
    expect(await store.hasLayer(claimed)).toBe(false);
    expect(fs.readdirSync(store.tmpDir)).toEqual([]);
  });

  it("decodes zstd on any Node (fzstd where zlib lacks it); a broken zstd blob fails and leaves nothing", async () => {
    // A zstd frame header with nothing after it: recognised by its magic, then cut short.
    const blob = Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 0, 0, 0, 0]);
    const digest = sha256Of(blob);
    await store.writeBlob(digest, blob);
    const err = await store.unpack(digest, diffId).catch((e: unknown) => e);
    expect(err).not.toBeInstanceOf(NotSupportedError);
    expect((err as Error).message).toMatch(/zstd|unexpected end|Unknown frame/i);
    expect(await store.hasLayer(diffId)).toBe(false);
    expect(fs.readdirSync(store.tmpDir)).toEqual([]);
  });
});
