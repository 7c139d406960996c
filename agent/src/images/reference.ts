/**
 * Image references as `docker pull` understands them, normalised the way Docker does:
 * `busybox` → docker.io/library/busybox:latest, `127.0.0.1:5000/busybox:latest`,
 * `host/repo@sha256:…`. Pure: no I/O.
 */
import { InvalidError } from "@flotilla/core";

export const DOCKER_HUB = "docker.io";
/** Where Docker Hub's distribution API actually lives; `docker.io` itself only redirects. */
export const DOCKER_HUB_API = "registry-1.docker.io";
export const DEFAULT_TAG = "latest";

export interface ImageReference {
  /** Registry as the user names it: `docker.io`, `127.0.0.1:5000`, `ghcr.io`. */
  readonly domain: string;
  /** Repository path inside the registry; `library/…` for official Docker Hub images. */
  readonly path: string;
  /** Tag; `latest` when neither tag nor digest was given. */
  readonly tag?: string;
  /** `sha256:<hex>`; when present it wins over the tag for pulling. */
  readonly digest?: string;
}

// Grammar of github.com/distribution/reference, written out small.
const COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const DOMAIN =
  /^(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*|\[[0-9a-fA-F:.]+\])(?::[0-9]+)?$/;
const TAG = /^[\w][\w.-]{0,127}$/;
const DIGEST = /^sha256:[a-f0-9]{64}$/;
const MAX_NAME = 255;

function invalid(input: string, why?: string): InvalidError {
  return new InvalidError(why ? `invalid reference format: ${why}: ${input}` : `invalid reference format: ${input}`, {
    field: "reference",
  });
}

/**
 * Parses and normalises a reference. Throws InvalidError with Docker's wording
 * ("invalid reference format") for anything `docker pull` would refuse.
 */
export function parseReference(input: string): ImageReference {
  let rest = input.trim();
  if (rest === "") throw invalid(input);

  let digest: string | undefined;
  const at = rest.lastIndexOf("@");
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!DIGEST.test(digest)) {
      throw invalid(input, digest.includes(":") && !digest.startsWith("sha256:") ? "only sha256 digests are supported" : "bad digest");
    }
  }

  let tag: string | undefined;
  const colon = rest.lastIndexOf(":");
  if (colon > rest.lastIndexOf("/")) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG.test(tag)) throw invalid(input, "bad tag");
  }

  let domain = DOCKER_HUB;
  let path = rest;
  const slash = rest.indexOf("/");
  if (slash >= 0) {
    const first = rest.slice(0, slash);
    // Docker's rule: the first component is a registry if it looks like a host name.
    if (first.includes(".") || first.includes(":") || first === "localhost" || first !== first.toLowerCase()) {
      domain = first;
      path = rest.slice(slash + 1);
    }
  }
  if (!DOMAIN.test(domain)) throw invalid(input, "bad registry host");
  if (domain === "index.docker.io") domain = DOCKER_HUB;
  if (path !== path.toLowerCase()) throw invalid(input, "repository name must be lowercase");
  if (path === "" || !path.split("/").every((c) => COMPONENT.test(c))) throw invalid(input);
  if (domain === DOCKER_HUB && !path.includes("/")) path = `library/${path}`;
  if (domain.length + 1 + path.length > MAX_NAME) throw invalid(input, "repository name too long");

  if (!tag && !digest) tag = DEFAULT_TAG;
  return { domain, path, ...(tag ? { tag } : {}), ...(digest ? { digest } : {}) };
}

/** `docker.io/library/busybox` — the key under which tags are stored. */
export function canonicalRepository(ref: Pick<ImageReference, "domain" | "path">): string {
  return `${ref.domain}/${ref.path}`;
}

/** `docker.io/library/busybox:latest`, or `…@sha256:…` for a digest reference. */
export function canonicalReference(ref: ImageReference): string {
  const repo = canonicalRepository(ref);
  return ref.digest ? `${repo}@${ref.digest}` : `${repo}:${ref.tag ?? DEFAULT_TAG}`;
}

/** The short form Docker shows: `busybox`, `user/app`, `127.0.0.1:5000/busybox`. */
export function familiarRepository(ref: Pick<ImageReference, "domain" | "path">): string {
  if (ref.domain !== DOCKER_HUB) return `${ref.domain}/${ref.path}`;
  return ref.path.startsWith("library/") && ref.path.split("/").length === 2 ? ref.path.slice("library/".length) : ref.path;
}

/** `busybox:latest`, `127.0.0.1:5000/busybox@sha256:…`: how errors and RepoTags name an image. */
export function familiarReference(ref: ImageReference): string {
  const repo = familiarRepository(ref);
  return ref.digest ? `${repo}@${ref.digest}` : `${repo}:${ref.tag ?? DEFAULT_TAG}`;
}

/** Turns a stored canonical string back into the familiar one (`docker.io/library/x:1` → `x:1`). */
export function familiarize(canonical: string): string {
  return familiarReference(parseReference(canonical));
}

/** Host (and port) that serves the distribution API for this registry. */
export function registryEndpoint(domain: string): string {
  return domain === DOCKER_HUB ? DOCKER_HUB_API : domain;
}
