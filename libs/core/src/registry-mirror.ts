/**
 * Registry mirrors (docker's `--registry-mirror`): Docker Hub images are pulled from each mirror
 * in turn, then from Docker Hub itself; images of any other registry never go through a mirror.
 * A mirror is named by URL; an http:// mirror is reached over plain HTTP without also being
 * listed as insecure, as Docker does. The agent (--registry-mirror) and the API
 * (`machine create --engine-registry-mirror`) check mirrors with the same rule.
 */
import { InvalidError } from "./errors";

export interface RegistryMirror {
  /** The URL as given, for messages. */
  url: string;
  /** `host[:port]`: the domain the registry client is asked for. */
  domain: string;
  /** Plain HTTP (an http:// URL). */
  insecure: boolean;
}

/** Parses a mirror URL: http(s)://host[:port] with no path, query or credentials. Pure. */
export function parseRegistryMirror(text: string): RegistryMirror {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new InvalidError(`registry mirror ${JSON.stringify(text)}: not a URL (want http(s)://host[:port])`, { field: "registry-mirror" });
  }
  if (
    (url.protocol !== "http:" && url.protocol !== "https:") ||
    url.username ||
    url.password ||
    url.search ||
    url.hash ||
    url.pathname !== "/"
  ) {
    throw new InvalidError(`registry mirror ${JSON.stringify(text)}: want http(s)://host[:port] with no path, query or credentials`, {
      field: "registry-mirror",
    });
  }
  return { url: text, domain: url.host, insecure: url.protocol === "http:" };
}

/** The registries to pull `domain`'s image from, in order. Pure. */
export function pullSources(domain: string, mirrors: readonly RegistryMirror[]): string[] {
  return domain === "docker.io" ? [...mirrors.map((m) => m.domain), domain] : [domain];
}
