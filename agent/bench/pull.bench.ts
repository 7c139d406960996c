// Pulling a >= 50 MB image from a local registry (docker-registry on loopback), alternating,
// fresh destinations each run. The image is made here from local files: busybox plus
// /usr/share and /usr/lib content (~7,000 files), in two layers.
//
// What each side does:
// - agent, `ratio`: ImageStore.pull() until it returns, i.e. until `docker pull` would print
//   "Status: Downloaded newer image": manifest + config, every layer blob downloaded to disk with
//   its digest checked and, in the same pass, decompressed, hashed against the config's diffID and
//   read as a tar (size, refusal of hostile entries); image recorded. The layers' files are NOT
//   written yet: the store's unpacker writes them in the background once pull() returns.
// - skopeo: `skopeo copy docker://… oci:DIR` (manifest + config, blobs downloaded with their digests
//   checked; no decompression, no diffID check, no unpacking).
// - `firstRunMs`: what the first container create after the pull waits for: resolve() called
//   right as pull() returns (it waits for the background unpacking to finish).
// - `untilUnpackedRatio`: (pull + firstRunMs) / skopeo: the whole work, files on disk, against
//   skopeo's copy; the figure that compares with the old eager pull.
//
// Each run's store and OCI dir are deleted only at the end: on this kind of host (ext4 without a
// journal) inode allocation skips recently deleted inodes one by one (`recently_deleted` in
// perf), so creating 7,000 files right after deleting the previous run's 7,000 costs several
// times more; the bench should not measure its own cleanup.
//
//   npm run bench:pull [-- --runs N] [-- --json]
//   (last line with --json: {"ratio":…,"firstRunMs":…,"untilUnpackedRatio":…})
//
// Needs root (the store writes owners and devices), umoci, skopeo and docker-registry.
import { execFile, execFileSync } from "node:child_process";
import * as fs from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { startRegistry } from "../../test/support/registry";
import { busyboxLayout, FIXTURE_TAGS } from "../../test/support/busybox-image";
import { ImageStore } from "../src/images";

const run = promisify(execFile);
const TARGET_BYTES = 60 << 20;

/** An OCI layout with busybox and ~60 MB of the host's files, in two layers. */
function makeBigImage(work: string): string {
  const layout = join(work, "layout");
  execFileSync("cp", ["-a", busyboxLayout(), layout]);
  const bundle = join(work, "bundle");
  execFileSync("umoci", ["unpack", "--rootless", "--image", `${layout}:${FIXTURE_TAGS.busybox}`, bundle], { stdio: "ignore" });
  const dest = join(bundle, "rootfs", "data");
  fs.mkdirSync(dest, { recursive: true });
  let total = 0;
  const walk = (dir: string) => {
    for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
      if (total >= TARGET_BYTES) return;
      const path = join(dir, entry.name);
      if (entry.isDirectory()) walk(path);
      else if (entry.isFile()) {
        const size = fs.statSync(path).size;
        if (size === 0 || size > 8 << 20) continue;
        const to = join(dest, `${total}-${entry.name}`);
        fs.copyFileSync(path, to);
        total += size;
      }
    }
  };
  for (const root of ["/usr/share", "/usr/lib"]) walk(root);
  execFileSync("umoci", ["repack", "--image", `${layout}:big`, bundle], { stdio: "ignore" });
  return layout;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

export { makeBigImage };
export async function runPullBench(opts: { runs: number; json: boolean }) {
  const work = fs.mkdtempSync(join(tmpdir(), "flotilla-bench-pull-"));
  const registry = await startRegistry();
  try {
    const layout = makeBigImage(work);
    const ref = await registry.push("big", "bench/big:1", { layout });
    const blobBytes = fs
      .readdirSync(join(layout, "blobs", "sha256"))
      .reduce((n, f) => n + fs.statSync(join(layout, "blobs", "sha256", f)).size, 0);
    const ours: number[] = [];
    const firstRun: number[] = [];
    const skopeo: number[] = [];
    for (let i = 0; i < opts.runs; i++) {
      const root = join(work, `store-${i}`);
      const store = await ImageStore.open({ root, insecureRegistries: [registry.host] });
      let t0 = performance.now();
      await store.pull(ref);
      const pulled = performance.now();
      ours.push(pulled - t0);
      const { lowerDirs } = await store.resolve(ref);
      firstRun.push(performance.now() - pulled);
      if (!fs.existsSync(join(lowerDirs[0]!, "data"))) throw new Error("resolve() returned before the data layer was unpacked");
      const oci = join(work, `oci-${i}`);
      t0 = performance.now();
      await run("skopeo", ["copy", "--quiet", "--insecure-policy", "--src-tls-verify=false", `docker://${ref}`, `oci:${oci}:big`]);
      skopeo.push(performance.now() - t0);
    }
    const round2 = (x: number) => Math.round(x * 100) / 100;
    const ratio = round2(median(ours) / median(skopeo));
    const firstRunMs = Math.round(median(firstRun));
    const untilUnpackedRatio = round2(median(ours.map((t, i) => t + firstRun[i]!)) / median(skopeo));
    console.log(
      `pull of ${(blobBytes / 1e6).toFixed(1)} MB (compressed) from a local registry, ${opts.runs} runs (medians): agent ${Math.round(median(ours))} ms (download + verify digests), skopeo copy to an OCI dir ${Math.round(median(skopeo))} ms: ${ratio}x (goal <= 1.0x); first create after the pull waits ${firstRunMs} ms for the unpacking; pull + unpack ${untilUnpackedRatio}x skopeo`,
    );
    if (opts.json) console.log(JSON.stringify({ ratio, firstRunMs, untilUnpackedRatio }));
    return { ratio, firstRunMs, untilUnpackedRatio };
  } finally {
    await registry.stop();
    fs.rmSync(work, { recursive: true, force: true });
  }
}

if (process.argv[1] && /pull\.bench\.ts$/.test(process.argv[1])) {
  const argv = process.argv.slice(2);
  const runsAt = argv.indexOf("--runs");
  runPullBench({ runs: runsAt >= 0 ? Number(argv[runsAt + 1]) : 5, json: argv.includes("--json") }).catch((err) => {
    console.error(err);
    process.exit(1);
  });
}
