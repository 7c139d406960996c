/**
 * Files the agent prepares for a container beside its rootfs — /etc/hostname, /etc/hosts,
 * /etc/resolv.conf, bound in by the shim as Docker does — and the numeric user the shim needs,
 * resolved from the image's /etc/passwd and /etc/group.
 */
import * as fs from "node:fs/promises";
import { join } from "node:path";
import { InvalidError } from "@flotilla/core";
import { applyDns, extraHostLines, type NameSettings } from "./host-options";

/** Reads `rel` from the first layer directory that has it as a regular file (upper first). */
async function readFromLayers(dirs: readonly string[], rel: string): Promise<string | null> {
  for (const dir of dirs) {
    const path = join(dir, rel);
    try {
      // A symlink in an image could point anywhere on the host: never follow it here.
      const st = await fs.lstat(path);
      if (!st.isFile()) continue;
      return await fs.readFile(path, "utf8");
    } catch {
      // not in this layer
    }
  }
  return null;
}

function findEntry(text: string | null, key: string, byName: boolean): string[] | undefined {
  for (const line of (text ?? "").split("\n")) {
    const f = line.split(":");
    if (f.length >= 3 && (byName ? f[0] === key : f[2] === key)) return f;
  }
  return undefined;
}

/**
 * `user`, `uid`, `user:group`, `uid:gid` → `UID:GID` for `--user`; "" for root with no change.
 * Docker's messages when a name is unknown.
 */
export async function resolveUser(user: string, layerDirs: readonly string[]): Promise<string> {
  if (!user) return "";
  const [u, g] = user.split(":", 2) as [string, string | undefined];
  const numeric = (s: string) => /^\d+$/.test(s);
  let uid: string;
  let gid: string | undefined;
  if (numeric(u)) {
    uid = u;
    if (g === undefined) gid = findEntry(await readFromLayers(layerDirs, "etc/passwd"), u, false)?.[3];
  } else {
    const entry = findEntry(await readFromLayers(layerDirs, "etc/passwd"), u, true);
    if (!entry) throw new InvalidError(`unable to find user ${u}: no matching entries in passwd file`, { field: "User" });
    uid = entry[2]!;
    gid = entry[3];
  }
  if (g !== undefined) {
    if (numeric(g)) gid = g;
    else {
      const entry = findEntry(await readFromLayers(layerDirs, "etc/group"), g, true);
      if (!entry) throw new InvalidError(`unable to find group ${g}: no matching entries in group file`, { field: "User" });
      gid = entry[2];
    }
  }
  return `${uid}:${gid && numeric(gid) ? gid : uid}`;
}

export interface EtcFiles {
  hostname: string;
  hosts: string;
  resolvConf: string;
}

const DEFAULT_RESOLV = "nameserver 8.8.8.8\nnameserver 8.8.4.4\n";

/**
 * Writes hostname, hosts and resolv.conf into `dir`. The host's resolv.conf is reused unless it
 * points at a loopback resolver, which the container (own netns) cannot reach. On a user network
 * (`embeddedDns`) the only nameserver is 127.0.0.11, as in Docker; search and options are kept.
 */
export async function writeEtcFiles(
  dir: string,
  hostname: string,
  ipAddress: string,
  isolated: boolean,
  names?: NameSettings,
  embeddedDns = false,
): Promise<EtcFiles> {
  const files = { hostname: join(dir, "hostname"), hosts: join(dir, "hosts"), resolvConf: join(dir, "resolv.conf") };
  const hosts = [
    "127.0.0.1\tlocalhost",
    "::1\tlocalhost ip6-localhost ip6-loopback",
    ...extraHostLines(names?.extraHosts ?? []),
    ipAddress ? `${ipAddress}\t${hostname}` : `127.0.1.1\t${hostname}`,
    "",
  ].join("\n");
  let resolv = "";
  try {
    resolv = await fs.readFile("/etc/resolv.conf", "utf8");
  } catch {
    // no resolver configured on the host
  }
  if (embeddedDns) {
    const kept = resolv.split("\n").filter((l) => /^\s*(search|options|domain)\s/.test(l));
    resolv = ["nameserver 127.0.0.11", ...kept, ""].join("\n");
  } else if (isolated) {
    const kept = resolv.split("\n").filter((l) => !/^\s*nameserver\s+(127\.|::1)/.test(l));
    resolv = kept.some((l) => /^\s*nameserver\s/.test(l)) ? kept.join("\n") : DEFAULT_RESOLV;
  }
  if (names) resolv = applyDns(resolv, names);
  await fs.writeFile(files.hostname, `${hostname}\n`);
  await fs.writeFile(files.hosts, hosts);
  await fs.writeFile(files.resolvConf, resolv);
  return files;
}

/**
 * Whether the image has /bin/sh (or /usr/bin/sh), which a CMD-SHELL health check runs through.
 * Each path component is looked at with lstat, never followed: a symlinked /bin (merged /usr)
 * is looked up as /usr/bin instead, and a link could point anywhere on the host.
 */
export async function imageHasShell(layerDirs: readonly string[]): Promise<boolean> {
  const exists = async (dir: string, parts: readonly string[]): Promise<boolean> => {
    let path = dir;
    for (const [i, part] of parts.entries()) {
      path = join(path, part);
      const st = await fs.lstat(path).catch(() => null);
      if (!st) return false;
      // The last component may be a link (busybox's /bin/sh → busybox); the directories may not.
      if (i < parts.length - 1 && !st.isDirectory()) return false;
    }
    return true;
  };
  for (const dir of layerDirs) {
    if ((await exists(dir, ["bin", "sh"])) || (await exists(dir, ["usr", "bin", "sh"]))) return true;
  }
  return false;
}
