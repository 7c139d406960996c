// What the agent bundle and the control-plane bundle are both made of: a program bundled by
// esbuild for the pinned Node runtime, that runtime and its licence, a shell launcher, VERSION and
// RUNTIME, staged in a temporary directory and packed into one gzipped tarball. Each build script
// (build-agent-bundle.mjs, build-control-plane-bundle.mjs) adds what is its own.
import { execFileSync } from "node:child_process";
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";
import { nodeRuntime, RUNTIME } from "./node-runtime.mjs";

export const repo = resolve(dirname(fileURLToPath(import.meta.url)), "..");

/** The tarball to write: `--out FILE` on the command line, else `defaultOut` (relative to the repository). */
export function outArgument(defaultOut) {
  const args = process.argv.slice(2);
  const outIdx = args.indexOf("--out");
  return resolve(outIdx >= 0 ? args[outIdx + 1] : join(repo, defaultOut));
}

/** `entry` and its dependencies bundled into one CommonJS file for the pinned runtime (Node 20). */
export function bundleForNode(entry, outfile, options = {}) {
  return build({
    entryPoints: [entry],
    bundle: true,
    platform: "node",
    target: "node20",
    format: "cjs",
    outfile,
    logLevel: "warning",
    legalComments: "none",
    ...options,
  });
}

/** Writes an executable sh launcher, `lines` after the #! line. */
export function writeLauncher(work, name, lines) {
  writeFileSync(join(work, name), ["#!/bin/sh", ...lines, ""].join("\n"), { mode: 0o755 });
}

/**
 * Stages a bundle and packs it into `out`. `stage(work)` puts the bundle's own files (and
 * `node` and `NODE_LICENSE`, the runtime, already there) in `work` and returns the names to
 * pack, in order; VERSION (`version` and the build time) and RUNTIME follow them. The staging
 * directory is removed whatever happens.
 */
export async function packBundle({ tool, label, version, out, tmpPrefix, stage }) {
  const runtime = nodeRuntime((m) => console.error(`${tool}: ${m}`));
  const work = mkdtempSync(join(tmpdir(), tmpPrefix));
  try {
    copyFileSync(join(runtime, "node"), join(work, "node"));
    chmodSync(join(work, "node"), 0o755);
    copyFileSync(join(runtime, "LICENSE"), join(work, "NODE_LICENSE"));
    const files = await stage(work);
    writeFileSync(join(work, "VERSION"), `${version}\n${new Date().toISOString()}\n`);
    writeFileSync(join(work, "RUNTIME"), `node v${RUNTIME.version} linux-x64\n`);
    mkdirSync(dirname(out), { recursive: true });
    // gzip -1: the runtime dominates the size and level 1 is several times faster to make than -6
    // for a few MB more; the guest's gunzip is as fast either way.
    execFileSync("sh", [
      "-c",
      `tar -cf - -C "$1" ${[...files, "VERSION", "RUNTIME"].join(" ")} | gzip -1 > "$2.tmp" && mv -f "$2.tmp" "$2"`,
      "sh",
      work,
      out,
    ]);
    console.error(`${tool}: wrote ${out} (${label} ${version})`);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
