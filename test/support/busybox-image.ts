// Real OCI images for tests, made offline from the host's busybox-static with umoci, and cached
// under os.tmpdir()/flotilla-fixtures keyed by content (busybox binary + fixture version), so the
// first suite pays ~2 s and the rest nothing. One OCI layout holds four tags:
//
//   latest   busybox: bin/busybox + applet symlinks, /etc/passwd, /etc/group, /tmp (1777);
//            Cmd ["sh"], WorkingDir /tmp, Env, a label and an exposed port (see BUSYBOX_CONFIG)
//   layered  latest + two layers: data (owner 1000:1000, setuid mode, fixed mtime, hardlink,
//            symlink) and a layer with a whiteout (etc/motd) and an opaque dir (opt/data)
//   arm64    latest's layer with architecture arm64 (the binary stays amd64: for index tests)
//   multi    an OCI image index: linux/arm64/v8 → arm64, linux/amd64 → latest
//
// Needs the Debian packages umoci and busybox-static, and GNU tar. Push with registry.ts.
import { execFileSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import * as fs from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const FIXTURE_VERSION = "3";
const BUSYBOX = "/bin/busybox";

export const FIXTURE_TAGS = { busybox: "latest", layered: "layered", arm64: "arm64", multiArch: "multi" } as const;

/** The run defaults baked into the `latest` image, for tests of how defaults are applied. */
export const BUSYBOX_CONFIG = {
  Cmd: ["sh"],
  WorkingDir: "/tmp",
  Env: ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "FLOTILLA_FIXTURE=busybox"],
  Labels: { "org.flotilla.fixture": "busybox" },
  ExposedPorts: { "8080/tcp": {} },
} as const;

/** What the `layered` image's layers contain, for assertions. */
export const LAYERED_CONTENT = {
  /** Second layer: owned by 1000:1000, mtime 1600000000. */
  setuidFile: "opt/tool", // mode 04755
  hardlink: "opt/data/a-link", // → opt/data/a.txt
  symlink: "opt/current", // → data
  /** Third layer: `.wh.motd` in etc/ and `.wh..wh..opq` + c.txt in opt/data/. */
  whiteout: "etc/motd",
  opaqueDir: "opt/data",
  opaqueDirNewFile: "opt/data/c.txt",
  mtime: 1600000000,
  uid: 1000,
  gid: 1000,
} as const;

export interface LayoutImage {
  manifestDigest: string;
  mediaType: string;
  /** For images: config digest (= image ID) and layers (bottom first). Absent for the index. */
  configDigest?: string;
  layers?: Array<{ digest: string; diffId: string; size: number }>;
}

export function requireTools(): void {
  for (const [tool, pkg] of [
    ["umoci", "umoci"],
    ["skopeo", "skopeo"],
    ["docker-registry", "docker-registry"],
    [BUSYBOX, "busybox-static"],
  ]) {
    try {
      execFileSync("sh", ["-c", `command -v ${tool}`], { stdio: "ignore" });
    } catch {
      throw new Error(`test fixture needs ${tool}: apt-get install -y ${pkg} (scripts/system-deps.sh test)`);
    }
  }
}

function sh(cmd: string, args: string[], cwd?: string): string {
  return execFileSync(cmd, args, { cwd, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
}

function writeRootfs(rootfs: string): void {
  const bin = join(rootfs, "bin");
  fs.mkdirSync(bin, { recursive: true, mode: 0o755 });
  fs.copyFileSync(BUSYBOX, join(bin, "busybox"));
  fs.chmodSync(join(bin, "busybox"), 0o755);
  for (const applet of sh(BUSYBOX, ["--list"]).split("\n").filter(Boolean)) {
    if (applet !== "busybox") fs.symlinkSync("busybox", join(bin, applet));
  }
  fs.mkdirSync(join(rootfs, "etc"), { mode: 0o755 });
  fs.writeFileSync(join(rootfs, "etc/passwd"), "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n");
  fs.writeFileSync(join(rootfs, "etc/group"), "root:x:0:\nnogroup:x:65534:\n");
  fs.mkdirSync(join(rootfs, "tmp"));
  fs.chmodSync(join(rootfs, "tmp"), 0o1777);
  fs.mkdirSync(join(rootfs, "root"), { mode: 0o700 });
}

/** Tars a staging directory with GNU tar, numeric owners as they are on disk. */
function tarDir(dir: string, out: string): void {
  fs.chmodSync(dir, 0o755);
  sh("tar", ["--numeric-owner", "-C", dir, "-cf", out, "."]);
}

function writeLayeredLayers(work: string): [string, string] {
  const data = join(work, "stage-data");
  fs.mkdirSync(join(data, "opt/data"), { recursive: true });
  fs.mkdirSync(join(data, "etc"));
  fs.writeFileSync(join(data, "opt/data/a.txt"), "a\n");
  fs.writeFileSync(join(data, "opt/data/b.txt"), "b\n");
  fs.linkSync(join(data, "opt/data/a.txt"), join(data, LAYERED_CONTENT.hardlink));
  fs.symlinkSync("data", join(data, LAYERED_CONTENT.symlink));
  fs.writeFileSync(join(data, "etc/motd"), "hello from the lower layer\n");
  fs.writeFileSync(join(data, LAYERED_CONTENT.setuidFile), "#!/bin/sh\necho tool\n");
  fs.chownSync(join(data, LAYERED_CONTENT.setuidFile), LAYERED_CONTENT.uid, LAYERED_CONTENT.gid);
  fs.chmodSync(join(data, LAYERED_CONTENT.setuidFile), 0o4755); // after chown, which clears setuid
  const t = LAYERED_CONTENT.mtime;
  for (const p of ["opt/data/a.txt", "opt/data/b.txt", "etc/motd", LAYERED_CONTENT.setuidFile]) fs.utimesSync(join(data, p), t, t);
  fs.lutimesSync(join(data, LAYERED_CONTENT.symlink), t, t);

  const top = join(work, "stage-top");
  fs.mkdirSync(join(top, "opt/data"), { recursive: true });
  fs.mkdirSync(join(top, "etc"));
  fs.writeFileSync(join(top, "opt/data/.wh..wh..opq"), "");
  fs.writeFileSync(join(top, LAYERED_CONTENT.opaqueDirNewFile), "c\n");
  fs.writeFileSync(join(top, "etc/.wh.motd"), "");

  const [l1, l2] = [join(work, "data.tar"), join(work, "top.tar")];
  tarDir(data, l1);
  tarDir(top, l2);
  return [l1, l2];
}

function buildLayout(dir: string): void {
  const work = fs.mkdtempSync(join(tmpdir(), "flotilla-fixture-work-"));
  try {
    const layout = join(dir, "oci");
    sh("umoci", ["init", "--layout", layout]);
    sh("umoci", ["new", "--image", `${layout}:latest`]);
    const bundle = join(work, "bundle");
    sh("umoci", ["unpack", "--image", `${layout}:latest`, bundle]);
    writeRootfs(join(bundle, "rootfs"));
    sh("umoci", ["repack", "--image", `${layout}:latest`, bundle]);
    const c = BUSYBOX_CONFIG;
    sh("umoci", [
      "config",
      "--image",
      `${layout}:latest`,
      "--os",
      "linux",
      "--architecture",
      "amd64",
      ...c.Cmd.flatMap((a) => ["--config.cmd", a]),
      "--config.workingdir",
      c.WorkingDir,
      ...c.Env.flatMap((e) => ["--config.env", e]),
      ...Object.entries(c.Labels).flatMap(([k, v]) => ["--config.label", `${k}=${v}`]),
      ...Object.keys(c.ExposedPorts).flatMap((p) => ["--config.exposedports", p]),
    ]);

    const [data, top] = writeLayeredLayers(work);
    sh("umoci", ["raw", "add-layer", "--image", `${layout}:latest`, "--tag", "layered", data]);
    sh("umoci", ["raw", "add-layer", "--image", `${layout}:layered`, top]);
    sh("umoci", [
      "config",
      "--image",
      `${layout}:latest`,
      "--tag",
      "arm64",
      "--architecture",
      "arm64",
      "--config.env",
      "FLOTILLA_ARCH=arm64",
    ]);
    sh("umoci", ["gc", "--layout", layout]);
    writeMultiArchIndex(layout);
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
}

function writeMultiArchIndex(layout: string): void {
  const indexFile = join(layout, "index.json");
  const top = JSON.parse(fs.readFileSync(indexFile, "utf8")) as {
    manifests: Array<Record<string, unknown> & { annotations?: Record<string, string> }>;
  };
  const byTag = (tag: string) => {
    const d = top.manifests.find((m) => m.annotations?.["org.opencontainers.image.ref.name"] === tag);
    if (!d) throw new Error(`fixture: no tag ${tag} in ${layout}`);
    return { mediaType: d.mediaType, digest: d.digest, size: d.size };
  };
  const index = {
    schemaVersion: 2,
    mediaType: "application/vnd.oci.image.index.v1+json",
    manifests: [
      { ...byTag("arm64"), platform: { architecture: "arm64", os: "linux", variant: "v8" } },
      { ...byTag("latest"), platform: { architecture: "amd64", os: "linux" } },
    ],
  };
  const bytes = Buffer.from(JSON.stringify(index));
  const hex = createHash("sha256").update(bytes).digest("hex");
  fs.writeFileSync(join(layout, "blobs/sha256", hex), bytes);
  top.manifests.push({
    mediaType: index.mediaType,
    digest: `sha256:${hex}`,
    size: bytes.length,
    annotations: { "org.opencontainers.image.ref.name": FIXTURE_TAGS.multiArch },
  });
  fs.writeFileSync(indexFile, JSON.stringify(top));
}

let cached: string | undefined;

/**
 * The OCI layout directory with the fixture tags (see the top of this file), built on first use
 * and shared read-only by all suites. Concurrent builders race benignly: each builds aside and
 * renames; the first rename wins.
 */
export function busyboxLayout(): string {
  if (cached) return cached;
  requireTools();
  const key = createHash("sha256").update(FIXTURE_VERSION).update(fs.readFileSync(BUSYBOX)).digest("hex").slice(0, 16);
  const base = join(tmpdir(), "flotilla-fixtures");
  const final = join(base, `busybox-${key}`);
  if (!fs.existsSync(join(final, "oci", "index.json"))) {
    fs.mkdirSync(base, { recursive: true });
    const building = join(base, `.building-${process.pid}-${randomBytes(4).toString("hex")}`);
    fs.mkdirSync(building);
    try {
      buildLayout(building);
      fs.renameSync(building, final);
    } catch (e) {
      fs.rmSync(building, { recursive: true, force: true });
      if (!fs.existsSync(join(final, "oci", "index.json"))) throw e;
    }
  }
  cached = join(final, "oci");
  return cached;
}

function readJson<T>(layout: string, digest: string): T {
  return JSON.parse(fs.readFileSync(join(layout, "blobs/sha256", digest.slice("sha256:".length)), "utf8")) as T;
}

/** Digests of a fixture tag as stored in the layout (what a registry will serve after a push). */
export function layoutImage(tag: string, layout = busyboxLayout()): LayoutImage {
  const top = JSON.parse(fs.readFileSync(join(layout, "index.json"), "utf8")) as {
    manifests: Array<{ digest: string; mediaType: string; annotations?: Record<string, string> }>;
  };
  const d = top.manifests.find((m) => m.annotations?.["org.opencontainers.image.ref.name"] === tag);
  if (!d) throw new Error(`fixture: no tag ${tag}`);
  if (d.mediaType.includes("index")) return { manifestDigest: d.digest, mediaType: d.mediaType };
  const manifest = readJson<{ config: { digest: string }; layers: Array<{ digest: string; size: number }> }>(layout, d.digest);
  const config = readJson<{ rootfs: { diff_ids: string[] } }>(layout, manifest.config.digest);
  return {
    manifestDigest: d.digest,
    mediaType: d.mediaType,
    configDigest: manifest.config.digest,
    layers: manifest.layers.map((l, i) => ({ digest: l.digest, size: l.size, diffId: config.rootfs.diff_ids[i]! })),
  };
}
