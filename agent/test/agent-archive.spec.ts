// docker cp's path handling against a directory standing in for a container's root: symlinks,
// absolute or relative, resolve inside it and never reach the host; extraction never writes
// through a link planted in the destination. Plain files, no namespaces needed.
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough, Readable } from "node:stream";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { pathStat, resolveInRoot, tarIn, tarOut } from "../src/containers/archive";

let dir: string;
let root: string;
let outside: string;
let rootFd: number;

beforeEach(() => {
  dir = fs.mkdtempSync(join(tmpdir(), "flotilla-archive-"));
  root = join(dir, "root");
  outside = join(dir, "outside");
  fs.mkdirSync(join(root, "etc"), { recursive: true });
  fs.mkdirSync(join(root, "data"), { recursive: true });
  fs.mkdirSync(outside);
  fs.writeFileSync(join(root, "etc", "hostname"), "inside\n");
  fs.writeFileSync(join(outside, "secret"), "HOST\n");
  fs.symlinkSync(outside, join(root, "abs"));
  fs.symlinkSync(`../../../../../../..${outside}`, join(root, "rel"));
  fs.symlinkSync("/etc", join(root, "etclink"));
  fs.symlinkSync(outside, join(root, "data", "sub"));
  rootFd = fs.openSync(root, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY);
});

afterEach(() => {
  fs.closeSync(rootFd);
  fs.rmSync(dir, { recursive: true, force: true });
});

function read(r: { parentFd: number; name: string }): string {
  return fs.readFileSync(`/proc/self/fd/${r.parentFd}/${r.name}`, "utf8");
}

describe("docker cp paths", () => {
  it("resolves links inside the root: absolute, relative and chained", () => {
    const r = resolveInRoot(rootFd, "/etclink/hostname", false);
    expect(read(r)).toBe("inside\n");
    r.close();
    for (const p of ["/abs/secret", "/rel/secret", "/data/sub/secret"])
      expect(() => resolveInRoot(rootFd, p, false), p).toThrow(/Could not find the file/);
    const dotdot = resolveInRoot(rootFd, "/../../../etc/hostname", false);
    expect(read(dotdot)).toBe("inside\n");
    dotdot.close();
  });

  it("keeps a last-component link unless asked to follow it, and says so in the stat header", () => {
    const link = resolveInRoot(rootFd, "/etclink", false);
    const stat = JSON.parse(Buffer.from(pathStat(link, "/etclink"), "base64").toString());
    expect(stat).toMatchObject({ name: "etclink", linkTarget: "/etc" });
    expect(stat.mode & (2 ** 27)).toBeTruthy();
    link.close();
    const dirStat = resolveInRoot(rootFd, "/etclink/", true);
    const s2 = JSON.parse(Buffer.from(pathStat(dirStat, "/etclink/"), "base64").toString());
    expect(s2.name).toBe("etc");
    expect(s2.mode >>> 31).toBe(1);
    dirStat.close();
  });

  it("tars a resolved path out, named by its last component", async () => {
    const r = resolveInRoot(rootFd, "/etc", false);
    const out = new PassThrough();
    const chunks: Buffer[] = [];
    out.on("data", (b: Buffer) => chunks.push(b));
    await tarOut(r, out);
    r.close();
    const list = execFileSync("tar", ["-tf", "-"], { input: Buffer.concat(chunks), encoding: "utf8" })
      .split("\n")
      .filter(Boolean)
      .sort();
    expect(list).toEqual(["etc/", "etc/hostname"]);
  });

  it("extracts into the root without writing through a planted link; refuses a destination behind one", async () => {
    const src = join(dir, "src");
    fs.mkdirSync(join(src, "sub"), { recursive: true });
    fs.writeFileSync(join(src, "sub", "file.txt"), "payload\n");
    fs.writeFileSync(join(src, "top.txt"), "top\n");
    const tar = execFileSync("tar", ["-C", src, "-cf", "-", "sub", "top.txt"]);
    await tarIn(rootFd, "/data", Readable.from([tar]), join(dir, "stage1"), false);
    expect(fs.readdirSync(outside)).toEqual(["secret"]);
    expect(fs.readFileSync(join(root, "data", "sub", "file.txt"), "utf8")).toBe("payload\n");
    expect(fs.lstatSync(join(root, "data", "sub")).isDirectory()).toBe(true);
    expect(fs.readFileSync(join(root, "data", "top.txt"), "utf8")).toBe("top\n");
    await expect(tarIn(rootFd, "/abs", Readable.from([tar]), join(dir, "stage2"), false)).rejects.toThrow(/Could not find the file/);
    await expect(tarIn(rootFd, "/etc/hostname", Readable.from([tar]), join(dir, "stage3"), false)).rejects.toThrow(/not a directory/);
    expect(fs.readdirSync(outside)).toEqual(["secret"]);
    expect(fs.existsSync(join(dir, "stage1"))).toBe(false);
  });
});
