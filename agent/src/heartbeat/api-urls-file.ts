/**
 * The control plane's replica list as the agent last heard it. Provisioning writes the replicas it
 * knew into FLOTILLA_API_URL; heartbeat replies name the current list (replicas added since), which
 * is kept here, in the agent's state dir, so a restart does not fall back to the old one. The file
 * remembers the env value it replaced: a different FLOTILLA_API_URL (the machine was
 * re-provisioned, or edited by hand) wins over it.
 */
import { mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { formatReplicaUrls, parseReplicaUrls } from "@flotilla/core";

export const API_URLS_FILE = "control-plane-urls.json";

interface SavedApiUrls {
  /** FLOTILLA_API_URL when the list was saved. */
  fromEnv: string;
  urls: string[];
  savedAt: string;
}

/** The URL list heartbeats start with: the saved one when it was learnt under this env value, else the env's. */
export function startingApiUrl(envUrl: string, stateDir: string | undefined): string {
  if (!stateDir) return envUrl;
  try {
    const saved = JSON.parse(readFileSync(join(stateDir, API_URLS_FILE), "utf8")) as Partial<SavedApiUrls>;
    if (saved.fromEnv !== envUrl || !Array.isArray(saved.urls)) return envUrl;
    const urls = parseReplicaUrls(saved.urls.join(","), API_URLS_FILE);
    return urls.length ? formatReplicaUrls(urls) : envUrl;
  } catch {
    // None saved yet, or unreadable: the env's list is right until a reply says otherwise.
    return envUrl;
  }
}

/** Atomically; the URLs are no secret, but the state dir is root's. */
export function saveApiUrls(stateDir: string, envUrl: string, urls: readonly string[]): void {
  mkdirSync(stateDir, { recursive: true, mode: 0o700 });
  const file = join(stateDir, API_URLS_FILE);
  const tmp = `${file}.${process.pid}.tmp`;
  const saved: SavedApiUrls = { fromEnv: envUrl, urls: [...urls], savedAt: new Date().toISOString() };
  writeFileSync(tmp, JSON.stringify(saved, null, 2) + "\n", { mode: 0o644 });
  renameSync(tmp, file);
}
