// The agent bundle (scripts/build-agent-bundle.mjs) as provisioning uploads it. The bundle
// carries its own Node runtime (~100 MB, ~40 MB gzipped); a host that already has that exact
// runtime (the Flotilla guest image carries it, see scripts/build-guest-image.sh) gets the bundle
// without it and a link to its own copy instead. Under TCG a VM's sshd takes ~20 s for those 40 MB.
import { createHash } from "node:crypto";
import { readFile, stat } from "node:fs/promises";
import { gunzipSync, gzipSync } from "node:zlib";
import { UnavailableError } from "@flotilla/core";
import { TAR_BLOCK, tarMembers } from "./tar";

/** Where a host keeps Node runtimes shared by agents: <dir>/node-linux-x64-<version>/{node,LICENSE,SHA256}. */
export const HOST_RUNTIME_ROOT = "/usr/lib/flotilla/node-runtime";

export interface BundleRuntime {
  /** "v20.20.2", as `node --version` prints it. */
  version: string;
  /** The runtime's directory name on hosts that carry it: "node-linux-x64-20.20.2". */
  dirName: string;
  /** Hex sha256 of the bundle's `node`. */
  sha256: string;
}

export interface PreparedBundle {
  /** The bundle's Node runtime, when it carries one this module recognises. */
  runtime?: BundleRuntime;
  /** The bundle without `node` (gzipped tar), for hosts that have `runtime`. */
  withoutRuntime?: Buffer;
}

/** "node v20.20.2 linux-x64" (the bundle's RUNTIME file) → its version and directory name. */
export function parseRuntimeFile(text: string): Pick<BundleRuntime, "version" | "dirName"> | undefined {
  const m = /^node v(\d+\.\d+\.\d+) (linux-x64)\s*$/m.exec(text);
  return m ? { version: `v${m[1]}`, dirName: `node-${m[2]}-${m[1]}` } : undefined;
}

/** Splits a bundle's tar: its runtime (version, sha256) and the tar without `node`, gzipped. */
export function splitBundle(tar: Buffer): PreparedBundle {
  const members = tarMembers(tar);
  const node = members.find((m) => m.name === "node");
  const runtimeFile = members.find((m) => m.name === "RUNTIME");
  const parsed = runtimeFile && parseRuntimeFile(runtimeFile.body.toString("utf8"));
  if (!node || !parsed) return {};
  const rest = members.filter((m) => m !== node).map((m) => tar.subarray(m.start, m.end));
  return {
    runtime: { ...parsed, sha256: createHash("sha256").update(node.body).digest("hex") },
    withoutRuntime: gzipSync(Buffer.concat([...rest, Buffer.alloc(2 * TAR_BLOCK)]), { level: 6 }),
  };
}

const prepared = new Map<string, Promise<PreparedBundle>>();

/**
 * The bundle at `path` split for upload, kept per path, size and modification time (a control
 * plane provisions many machines from one bundle). A bundle that is not a gzipped tar gets an
 * empty result: it is then uploaded whole, as before, and the host's tar says what is wrong.
 */
export async function prepareBundle(path: string): Promise<PreparedBundle> {
  const st = await stat(path).catch(() => undefined);
  if (!st?.isFile()) throw new UnavailableError(`agent bundle ${path} is missing (node scripts/build-agent-bundle.mjs)`);
  const key = `${path}\0${st.size}\0${st.mtimeMs}`;
  let p = prepared.get(key);
  if (!p) {
    p = readFile(path).then((gz) => {
      try {
        return splitBundle(gunzipSync(gz));
      } catch {
        return {};
      }
    });
    // One entry per path: a rebuilt bundle replaces the old one's.
    for (const k of prepared.keys()) if (k.startsWith(`${path}\0`)) prepared.delete(k);
    prepared.set(key, p);
  }
  return p;
}

/** The directory on a host holding `runtime`, when it carries it. */
export function hostRuntimeDir(runtime: BundleRuntime): string {
  return `${HOST_RUNTIME_ROOT}/${runtime.dirName}`;
}
