#!/usr/bin/env node
// Builds the agent bundle the provisioner uploads to machines: one tarball with
//   agent.js        the agent and its dependencies bundled by esbuild (only Node needed on the host)
//   flotilla-shim   the native shim (agent/shim/build/flotilla-shim, built by `make -C agent/shim`)
//   flotilla-agent  a launcher: exec node agent.js --shim <its dir>/flotilla-shim "$@"
//   VERSION         the agent's package version and the bundle's build time
//
//   node scripts/build-agent-bundle.mjs [--out FILE]     (default agent/dist/flotilla-agent.tar.gz)
import { execFileSync } from "node:child_process";
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const repo = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const args = process.argv.slice(2);
const outIdx = args.indexOf("--out");
const out = resolve(outIdx >= 0 ? args[outIdx + 1] : join(repo, "agent", "dist", "flotilla-agent.tar.gz"));

const entry = existsSync(join(repo, "agent/dist/main.js")) ? join(repo, "agent/dist/main.js") : join(repo, "agent/src/main.ts");
const shim = join(repo, "agent/shim/build/flotilla-shim");
if (!existsSync(shim)) {
  console.error(`build-agent-bundle: ${shim} is missing (make -C agent/shim)`);
  process.exit(1);
}
const { version } = JSON.parse(readFileSync(join(repo, "agent/package.json"), "utf8"));

const work = mkdtempSync(join(tmpdir(), "flotilla-bundle-"));
try {
  await build({
    entryPoints: [entry],
    bundle: true,
    platform: "node",
    target: "node20",
    format: "cjs",
    outfile: join(work, "agent.js"),
    // Workspace libraries from their sources, so the bundle does not depend on their builds.
    alias: { "@flotilla/core": join(repo, "libs/core/src/index.ts") },
    logLevel: "warning",
    legalComments: "none",
  });
  copyFileSync(shim, join(work, "flotilla-shim"));
  chmodSync(join(work, "flotilla-shim"), 0o755);
  writeFileSync(
    join(work, "flotilla-agent"),
    '#!/bin/sh\n# Flotilla agent launcher (from the agent bundle).\nhere=$(dirname "$(readlink -f "$0")")\nexec node "$here/agent.js" --shim "$here/flotilla-shim" "$@"\n',
    { mode: 0o755 },
  );
  writeFileSync(join(work, "VERSION"), `${version}\n${new Date().toISOString()}\n`);
  mkdirSync(dirname(out), { recursive: true });
  execFileSync("tar", ["-czf", out, "-C", work, "agent.js", "flotilla-shim", "flotilla-agent", "VERSION"]);
  console.error(`build-agent-bundle: wrote ${out} (agent ${version})`);
} finally {
  rmSync(work, { recursive: true, force: true });
}
