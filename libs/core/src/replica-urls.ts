/**
 * The control plane's replicas as clients reach them: a comma-separated list of base URLs
 * (`http://10.0.0.11:8080,http://10.0.0.12:8080`), written once here and read alike by the API's
 * configuration, the agents (FLOTILLA_API_URL, and the list a heartbeat reply carries) and ctl.
 */
import { InvalidError } from "./errors";

/** More than this many replicas is a mistake, not a topology. */
export const MAX_REPLICA_URLS = 32;

/**
 * The base URLs in `raw`, trimmed, without trailing slashes, duplicates dropped (first kept).
 * Each must be an absolute http:// or https:// URL with a host and no query, fragment or
 * credentials; an error names `field` and the offending entry.
 */
export function parseReplicaUrls(raw: string, field: string): string[] {
  const out: string[] = [];
  for (const item of raw
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean)) {
    const base = item.replace(/\/+$/, "");
    let url: URL | undefined;
    try {
      url = new URL(base);
    } catch {
      url = undefined;
    }
    if (!url || (url.protocol !== "http:" && url.protocol !== "https:") || !url.hostname)
      throw new InvalidError(`${field}: "${item}" is not an http:// or https:// URL`, { field });
    if (url.search || url.hash || url.username || url.password)
      throw new InvalidError(`${field}: "${item}" may not carry a query, a fragment or credentials`, { field });
    if (!out.includes(base)) out.push(base);
  }
  if (out.length > MAX_REPLICA_URLS) throw new InvalidError(`${field}: at most ${MAX_REPLICA_URLS} URLs, got ${out.length}`, { field });
  return out;
}

/** The same list as one value (FLOTILLA_API_URL in an agent's env file). */
export function formatReplicaUrls(urls: readonly string[]): string {
  return urls.join(",");
}
