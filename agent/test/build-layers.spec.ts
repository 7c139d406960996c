// Layer tars made from directories in overlayfs form (a RUN step's upper dir): sorted, whiteouts
// and opaque directories converted, hardlinks kept, the same bytes every time, and read back by
// the pull path's applyLayer into the same tree. Also the merged view of layers the builder uses
// for COPY and WORKDIR, and the build options the CLI sends.
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { parseBuildOptions } from "../src/build/build-options";
import { stepCacheKey } from "../src/build/cache-key";
import { ImageFs } from "../src/build/image-fs";
import { directoryLayerTar } from "../src/build/layer-diff";
import { applyLayer } from "../src/images/layer-apply";
import { readTar } from "../src/images/tar-reader";

const IS_ROOT = process.getuid?.() === 0;
const dirs: string[] = [];
const temp = () => {
  const d = fs.mkdtempSync(join(tmpdir(), "flotilla-build-layers-"));
  dirs.push(d);
  return d;
};
afterEach(() => {
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

async function collect(source: AsyncIterable<Buffer>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of source) parts.push(c);
  return Buffer.concat(parts);
}

async function* once(b: Buffer): AsyncGenerator<Buffer> {
  yield b;
}

describe.skipIf(!IS_ROOT)("layer tars from directories", () => {
  function upperDir(): string {
    const up = temp();
    fs.mkdirSync(join(up, "etc"));
    fs.writeFileSync(join(up, "etc/conf"), "a=1\n");
    fs.linkSync(join(up, "etc/conf"), join(up, "etc/conf-link"));
    fs.symlinkSync("conf", join(up, "etc/alias"));
    execFileSync("mknod", [join(up, "etc/removed"), "c", "0", "0"]);
    fs.mkdirSync(join(up, "opt/data"), { recursive: true });
    execFileSync("setfattr", ["-n", "trusted.overlay.opaque", "-v", "y", join(up, "opt/data")]);
    execFileSync("setfattr", ["-n", "trusted.overlay.origin", "-v", "0x00", join(up, "etc")]);
    fs.writeFileSync(join(up, "opt/data/new.txt"), "new\n");
    fs.writeFileSync(join(up, "a-long-name-".repeat(10)), "long\n");
    fs.chmodSync(join(up, "opt/data/new.txt"), 0o4755);
    fs.mkdirSync(join(up, "proc"));
    return up;
  }

  it("writes sorted entries with whiteouts, opaque markers and hardlinks, without overlay's own xattrs", async () => {
    const up = upperDir();
    const tar = await collect(directoryLayerTar(up, { exclude: (rel) => rel === "proc" }));
    const entries: Array<{ path: string; type: string; linkpath: string; mode: number; xattrs: string[] }> = [];
    for await (const { entry, body } of readTar(once(tar))) {
      for await (const _ of body) void _;
      entries.push({ path: entry.path, type: entry.type, linkpath: entry.linkpath, mode: entry.mode, xattrs: Object.keys(entry.xattrs) });
    }
    expect(entries.map((e) => e.path)).toEqual([
      "a-long-name-".repeat(10),
      "etc",
      "etc/alias",
      "etc/conf",
      "etc/conf-link",
      "etc/.wh.removed",
      "opt",
      "opt/data",
      "opt/data/.wh..wh..opq",
      "opt/data/new.txt",
    ]);
    expect(entries.find((e) => e.path === "etc/conf-link")).toMatchObject({ type: "hardlink", linkpath: "etc/conf" });
    expect(entries.find((e) => e.path === "etc/alias")).toMatchObject({ type: "symlink", linkpath: "conf" });
    expect(entries.find((e) => e.path === "opt/data/new.txt")!.mode).toBe(0o4755);
    expect(entries.find((e) => e.path === "etc")!.xattrs).toEqual([]);
    // The same directory gives the same bytes.
    const again = await collect(directoryLayerTar(up, { exclude: (rel) => rel === "proc" }));
    expect(createHash("sha256").update(again).digest("hex")).toBe(createHash("sha256").update(tar).digest("hex"));
  });

  it("round-trips through applyLayer into the same overlayfs form", async () => {
    const up = upperDir();
    const out = temp();
    await applyLayer(directoryLayerTar(up, { exclude: (rel) => rel === "proc" }), out, { layer: "test" });
    expect(fs.readFileSync(join(out, "etc/conf"), "utf8")).toBe("a=1\n");
    expect(fs.statSync(join(out, "etc/conf-link")).ino).toBe(fs.statSync(join(out, "etc/conf")).ino);
    const wh = fs.lstatSync(join(out, "etc/removed"));
    expect(wh.isCharacterDevice() && wh.rdev === 0).toBe(true);
    expect(
      execFileSync("getfattr", ["--absolute-names", "--only-values", "-n", "trusted.overlay.opaque", join(out, "opt/data")], {
        encoding: "utf8",
      }),
    ).toBe("y");
    expect(fs.statSync(join(out, "opt/data/new.txt")).mode & 0o7777).toBe(0o4755);
    expect(fs.existsSync(join(out, "proc"))).toBe(false);
  });

  it("merges layers as overlayfs would: whiteouts and opaque directories hide lower content", async () => {
    const lower = temp();
    fs.mkdirSync(join(lower, "etc"));
    fs.writeFileSync(join(lower, "etc/removed"), "old\n");
    fs.writeFileSync(join(lower, "etc/kept"), "kept\n");
    fs.mkdirSync(join(lower, "opt/data"), { recursive: true });
    fs.writeFileSync(join(lower, "opt/data/old.txt"), "old\n");
    fs.symlinkSync("/etc", join(lower, "link"));
    const view = new ImageFs([upperDir(), lower]);
    expect(await view.lookup("etc/removed")).toBeNull();
    expect((await view.lookup("etc/kept"))?.abs).toBe(join(lower, "etc/kept"));
    expect(await view.readdir("etc")).toEqual(["alias", "conf", "conf-link", "kept"]);
    expect(await view.readdir("opt/data")).toEqual(["new.txt"]);
    expect(await view.lookup("opt/data/old.txt")).toBeNull();
    // Symlinks resolve inside the view, never on the host.
    expect(await view.resolve("link/kept", true)).toBe("etc/kept");
    expect(await view.resolve("../../link/../etc/kept", true)).toBe("etc/kept");
  });
});

describe("build options and cache keys", () => {
  it("reads what the docker CLI sends and refuses unsupported options by name", () => {
    const q = new URLSearchParams(
      "t=a&t=b:1&dockerfile=sub/Dockerfile&buildargs=%7B%22V%22%3A%222%22%7D&labels=%7B%22l%22%3A%22x%22%7D&target=build&nocache=1&pull=0&rm=1&networkmode=default&shmsize=0&memory=0&cachefrom=%5B%5D",
    );
    expect(parseBuildOptions(q)).toMatchObject({
      tags: ["a", "b:1"],
      dockerfile: "sub/Dockerfile",
      labels: { l: "x" },
      target: "build",
      noCache: true,
      pull: false,
      network: "new",
    });
    expect(parseBuildOptions(q).buildArgs.get("V")).toBe("2");
    expect(() => parseBuildOptions(new URLSearchParams("memory=1000000"))).toThrow("--memory is not supported");
    expect(() => parseBuildOptions(new URLSearchParams("squash=1"))).toThrow("--squash is not supported");
    expect(() => parseBuildOptions(new URLSearchParams("rm=0"))).toThrow("--rm=false is not supported");
    expect(() => parseBuildOptions(new URLSearchParams("networkmode=bridge"))).toThrow("--network=bridge is not supported");
    expect(() => parseBuildOptions(new URLSearchParams("dockerfile=../x"))).toThrow("must be within the build context");
  });

  it("keys the cache on parent, step and resulting config", () => {
    const k = stepCacheKey("sha256:p", "/bin/sh -c true", { Env: ["A=1"] });
    expect(stepCacheKey("sha256:p", "/bin/sh -c true", { Env: ["A=1"] })).toBe(k);
    expect(stepCacheKey("sha256:q", "/bin/sh -c true", { Env: ["A=1"] })).not.toBe(k);
    expect(stepCacheKey("sha256:p", "/bin/sh -c true ", { Env: ["A=1"] })).not.toBe(k);
    expect(stepCacheKey("sha256:p", "/bin/sh -c true", { Env: ["A=2"] })).not.toBe(k);
  });
});
