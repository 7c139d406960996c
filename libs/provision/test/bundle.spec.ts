// Splitting the agent bundle for hosts that carry its Node runtime: the tar without `node` must be
// one the host's tar extracts to exactly the other files, and the runtime's identity must be the
// binary's own sha256. Archives are made by the system's tar, as scripts/build-agent-bundle.mjs does.
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gunzipSync } from "node:zlib";
import { afterAll, describe, expect, it } from "vitest";
import { parseRuntimeFile, prepareBundle, splitBundle, tarMembers, tarOf } from "../src";

const work = mkdtempSync(join(tmpdir(), "flotilla-bundle-spec-"));
afterAll(() => rmSync(work, { recursive: true, force: true }));

function makeTar(dir: string, files: Record<string, string | Buffer>, format = "gnu"): Buffer {
  const src = join(work, `${dir}-src`);
  mkdirSync(src, { recursive: true });
  for (const [name, content] of Object.entries(files)) {
    mkdirSync(join(src, name, ".."), { recursive: true });
    writeFileSync(join(src, name), content);
  }
  return execFileSync("tar", ["-cf", "-", `--format=${format}`, "-C", src, ...Object.keys(files)]);
}

const node = Buffer.alloc(300_000, 7);
const files = {
  "agent.js": "console.log('agent')\n",
  node,
  NODE_LICENSE: "MIT\n",
  "flotilla-agent": "#!/bin/sh\n",
  RUNTIME: "node v20.20.2 linux-x64\n",
};

describe("the agent bundle split", () => {
  it("reads the runtime file the bundle script writes, and nothing else", () => {
    expect(parseRuntimeFile("node v20.20.2 linux-x64\n")).toEqual({ version: "v20.20.2", dirName: "node-linux-x64-20.20.2" });
    expect(parseRuntimeFile("node v20.20.2 linux-arm64\n")).toBeUndefined();
    expect(parseRuntimeFile("")).toBeUndefined();
  });

  for (const format of ["gnu", "ustar", "pax"]) {
    it(`drops node and keeps every other file byte for byte (${format} tar)`, () => {
      const tar = makeTar(format, { ...files, [`deep/${"d".repeat(120)}/file`]: "long name\n" }, format);
      expect(tarMembers(tar).map((m) => m.name)).toEqual([...Object.keys(files), `deep/${"d".repeat(120)}/file`]);
      const split = splitBundle(tar);
      expect(split.runtime).toEqual({
        version: "v20.20.2",
        dirName: "node-linux-x64-20.20.2",
        sha256: createHash("sha256").update(node).digest("hex"),
      });
      const out = join(work, `${format}-out`);
      mkdirSync(out);
      execFileSync("tar", ["-xf", "-", "-C", out], { input: gunzipSync(split.withoutRuntime!) });
      expect(readdirSync(out).sort()).toEqual(["NODE_LICENSE", "RUNTIME", "agent.js", "deep", "flotilla-agent"]);
      expect(readFileSync(join(out, "agent.js"), "utf8")).toBe(files["agent.js"]);
      expect(readFileSync(join(out, "deep", "d".repeat(120), "file"), "utf8")).toBe("long name\n");
    });
  }

  it("leaves a bundle without a runtime (or with an unknown one) whole", () => {
    const { node: _node, ...noNode } = files;
    expect(splitBundle(makeTar("no-node", noNode))).toEqual({});
    expect(splitBundle(makeTar("other-rt", { ...files, RUNTIME: "node v20.20.2 darwin-arm64\n" }))).toEqual({});
  });

  it("refuses a corrupt or truncated tar", () => {
    const tar = makeTar("corrupt", files);
    const bad = Buffer.from(tar);
    bad[0] = bad[0]! ^ 1;
    expect(() => tarMembers(bad)).toThrow(/checksum/);
    expect(() => tarMembers(tar.subarray(0, 2048))).toThrow(/truncated/);
  });

  it("reads a bundle file once per version of it", async () => {
    const path = join(work, "bundle.tar.gz");
    execFileSync("sh", ["-c", `gzip -1 > ${path}`], { input: makeTar("file", files) });
    const first = await prepareBundle(path);
    expect(first.runtime?.dirName).toBe("node-linux-x64-20.20.2");
    expect(await prepareBundle(path)).toBe(first);
    execFileSync("sh", ["-c", `gzip -1 > ${path}`], { input: makeTar("file2", { ...files, RUNTIME: "node v22.1.0 linux-x64\n" }) });
    utimesSync(path, new Date(), new Date(Date.now() + 5000));
    expect((await prepareBundle(path)).runtime?.version).toBe("v22.1.0");
    await expect(prepareBundle(join(work, "missing.tar.gz"))).rejects.toThrow(/agent bundle .*missing\.tar\.gz is missing/);
  });
});

describe("the archive of files provisioning writes in one exec", () => {
  it("extracts with the host's tar to the files, contents and modes given, long paths included", () => {
    const long = `etc/${"x".repeat(90)}/${"y".repeat(60)}/key.pem`;
    const tar = tarOf([
      { path: "/etc/flotilla/server-key.pem", content: "secret\n", mode: 0o600 },
      { path: "/opt/flotilla/agent-run.sh", content: Buffer.from("#!/bin/sh\n"), mode: 0o755 },
      { path: `/${long}`, content: "", mode: 0o644 },
    ]);
    expect(tarMembers(tar).map((m) => m.name)).toEqual(["etc/flotilla/server-key.pem", "opt/flotilla/agent-run.sh", long]);
    const out = join(work, "files-out");
    mkdirSync(out);
    execFileSync("tar", ["-xf", "-", "-C", out], { input: tar });
    expect(readFileSync(join(out, "etc/flotilla/server-key.pem"), "utf8")).toBe("secret\n");
    expect(statSync(join(out, "etc/flotilla/server-key.pem")).mode & 0o777).toBe(0o600);
    expect(statSync(join(out, "opt/flotilla/agent-run.sh")).mode & 0o777).toBe(0o755);
    expect(readFileSync(join(out, long), "utf8")).toBe("");
    expect(() => tarOf([{ path: "a".repeat(300), content: "", mode: 0o644 }])).toThrow(/too long/);
  });
});
