/**
 * Client for the OCI distribution API, pull side: ping, manifests, blobs. It authenticates with
 * the `WWW-Authenticate` challenge flow (Bearer token service or Basic), follows blob redirects
 * without leaking credentials to other hosts, speaks plain HTTP only to registries listed as
 * insecure, and verifies every digest while the bytes stream.
 */
import { Readable } from "node:stream";
import { InvalidError, NotFoundError, NotSupportedError } from "@flotilla/core";
import { parseAuthChallenges } from "./auth-challenge";
import { assertDigest, DigestVerifier, isDigest, sha256Of, verified } from "./digest";
import { DigestMismatchError, ManifestUnknownError, PullAccessDeniedError, RegistryUnavailableError } from "./errors";
import { discard, httpRequest, readBody, type HttpRequestOptions, type HttpResponse } from "./http";
import {
  bareMediaType,
  INDEX_TYPES,
  MANIFEST_ACCEPT,
  MANIFEST_TYPES,
  MediaType,
  type Descriptor,
  type ImageIndexJson,
  type ImageManifestJson,
} from "./media-types";
import { familiarReference, familiarRepository, registryEndpoint, type ImageReference } from "./reference";

export interface Credentials {
  username: string;
  password: string;
}

export interface RegistryClientOptions {
  /** Registries reached over plain HTTP: `host:port`, `host` (any port) or an IPv4 CIDR. */
  insecureRegistries?: readonly string[];
  /** Extra CA certificates for https registries with a private CA. */
  ca?: HttpRequestOptions["ca"];
  /** Stored logins, asked per registry domain (`docker.io`, `127.0.0.1:5000`). */
  credentials?: (domain: string) => Credentials | undefined;
  timeoutMs?: number;
  userAgent?: string;
}

/** Per-call context: cancellation and credentials for this pull only (Docker's X-Registry-Auth). */
export interface RequestContext {
  signal?: AbortSignal;
  credentials?: Credentials;
}

export interface FetchedManifest {
  /** sha256 of the exact bytes served; verified against what was asked for. */
  digest: string;
  mediaType: string;
  bytes: Buffer;
  index?: ImageIndexJson;
  manifest?: ImageManifestJson;
}

const MANIFEST_LIMIT = 4 << 20; // Docker's limit too: manifests are small, a huge one is an attack.
const TOKEN_LIMIT = 1 << 20;
const REDIRECT_LIMIT = 5;

function ipv4ToInt(ip: string): number | undefined {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(ip);
  if (!m) return undefined;
  const parts = m.slice(1).map(Number);
  if (parts.some((p) => p > 255)) return undefined;
  return parts.reduce((acc, p) => acc * 256 + p, 0);
}

/** Whether `domain` (`host[:port]`) is covered by an entry of the insecure list. Pure. */
export function isInsecureRegistry(domain: string, insecure: readonly string[]): boolean {
  const host = domain.replace(/:\d+$/, "");
  return insecure.some((entry) => {
    if (entry === domain || entry === host) return true;
    const cidr = /^([\d.]+)\/(\d{1,2})$/.exec(entry);
    if (!cidr) return false;
    const net = ipv4ToInt(cidr[1]!);
    const ip = ipv4ToInt(host);
    const bits = Number(cidr[2]);
    if (net === undefined || ip === undefined || bits > 32) return false;
    const mask = bits === 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0;
    return (ip & mask) >>> 0 === (net & mask) >>> 0;
  });
}

function registryErrorText(body: Buffer): string {
  try {
    const parsed = JSON.parse(body.toString("utf8")) as { errors?: Array<{ code?: string; message?: string }> };
    const parts = (parsed.errors ?? []).map((e) => [e.code?.toLowerCase(), e.message].filter(Boolean).join(": "));
    if (parts.length) return parts.join("; ");
  } catch {
    // Not the registry's JSON error shape; fall back to the raw text.
  }
  return body.toString("utf8").slice(0, 200).trim();
}

/** A connection dropped mid-body is the registry's trouble: say so, naming the blob. */
async function* guarded(source: AsyncIterable<Buffer>, domain: string, what: string): AsyncGenerator<Buffer> {
  try {
    yield* source;
  } catch (e) {
    const err = e as Error;
    if (err instanceof DigestMismatchError || err.name === "AbortError") throw err;
    throw new RegistryUnavailableError(domain, `${what}: ${err.message}`);
  }
}

export class RegistryClient {
  /** Authorization header per `domain|scope`, with its expiry. */
  private readonly auth = new Map<string, { header: string; expires: number }>();
  /** The challenge each registry answered its ping with, to authenticate before the first 401. */
  private readonly challenges = new Map<string, string | string[]>();

  constructor(private readonly opts: RegistryClientOptions = {}) {}

  /** Base URL of the registry's API: https unless the registry is listed as insecure. */
  baseUrl(domain: string): URL {
    const scheme = isInsecureRegistry(domain, this.opts.insecureRegistries ?? []) ? "http" : "https";
    return new URL(`${scheme}://${registryEndpoint(domain)}/`);
  }

  /**
   * GET /v2/: checks that the registry answers and learns its auth challenge. Resolves for 200
   * and 401 (auth comes later, per repository); throws RegistryUnavailableError otherwise.
   */
  async ping(domain: string, ctx: RequestContext = {}): Promise<void> {
    const res = await this.request(domain, new URL("/v2/", this.baseUrl(domain)), { "user-agent": this.userAgent() }, ctx);
    discard(res);
    if (res.status === 401 && res.headers["www-authenticate"]) {
      this.challenges.set(domain, res.headers["www-authenticate"]);
      return;
    }
    if (res.status !== 200) throw new RegistryUnavailableError(domain, `GET /v2/ answered ${res.status}; is this a registry?`);
  }

  /**
   * Fetches a manifest or index by tag or digest, sending every media type we read in Accept.
   * Verifies the digest when asked by digest, and against Docker-Content-Digest otherwise.
   */
  async getManifest(ref: ImageReference, reference: string, ctx: RequestContext = {}): Promise<FetchedManifest> {
    const shown = isDigest(reference)
      ? familiarReference({ ...ref, tag: undefined, digest: reference })
      : familiarReference({ ...ref, tag: reference, digest: undefined });
    const res = await this.send(ref, `/v2/${ref.path}/manifests/${reference}`, MANIFEST_ACCEPT.join(", "), ctx);
    if (res.status !== 200) await this.fail(ref, res, () => new ManifestUnknownError(shown));
    const bytes = await readBody(res, MANIFEST_LIMIT).catch((e: Error) => {
      throw new RegistryUnavailableError(ref.domain, `manifest ${shown}: ${e.message}`);
    });
    const digest = sha256Of(bytes);
    const announced = res.headers["docker-content-digest"];
    const expected = isDigest(reference) ? reference : typeof announced === "string" && isDigest(announced) ? announced : digest;
    if (digest !== expected) throw new DigestMismatchError(`manifest ${shown}`, expected, digest);

    let json: Record<string, unknown>;
    try {
      json = JSON.parse(bytes.toString("utf8")) as Record<string, unknown>;
    } catch {
      throw new InvalidError(`manifest ${shown} is not JSON`);
    }
    // The document's own mediaType is authoritative; the header is a fallback for old registries.
    let mediaType = typeof json.mediaType === "string" ? json.mediaType : bareMediaType(res.headers["content-type"]);
    if (json.schemaVersion === 1 || mediaType === MediaType.dockerManifestV1 || mediaType === MediaType.dockerManifestV1Signed) {
      throw new NotSupportedError(`manifest ${shown} uses image manifest schema 1, which is deprecated and not supported`);
    }
    if (!INDEX_TYPES.has(mediaType) && !MANIFEST_TYPES.has(mediaType)) {
      if (Array.isArray(json.manifests)) mediaType = MediaType.ociIndex;
      else if (json.config && Array.isArray(json.layers)) mediaType = MediaType.ociManifest;
      else throw new NotSupportedError(`manifest ${shown} has unsupported media type ${mediaType || "(none)"}`);
    }
    if (INDEX_TYPES.has(mediaType)) {
      const index = json as unknown as ImageIndexJson;
      if (!Array.isArray(index.manifests)) throw new InvalidError(`index ${shown} has no manifests list`);
      index.manifests.forEach((m, i) => assertDigest(m?.digest, `index ${shown} manifests[${i}]`));
      return { digest, mediaType, bytes, index };
    }
    const manifest = json as unknown as ImageManifestJson;
    if (!manifest.config || !Array.isArray(manifest.layers)) throw new InvalidError(`manifest ${shown} lacks config or layers`);
    assertDigest(manifest.config.digest, `manifest ${shown} config`);
    manifest.layers.forEach((l, i) => assertDigest(l?.digest, `manifest ${shown} layers[${i}]`));
    return { digest, mediaType, bytes, manifest };
  }

  /**
   * Streams a blob. The returned iterable throws DigestMismatchError at the end (or as soon as
   * more bytes than `desc.size` arrive); callers must not trust what they got before that.
   */
  async getBlob(ref: ImageReference, desc: Pick<Descriptor, "digest" | "size">, ctx: RequestContext = {}): Promise<AsyncIterable<Buffer>> {
    const res = await this.send(ref, `/v2/${ref.path}/blobs/${desc.digest}`, undefined, ctx);
    if (res.status !== 200) {
      await this.fail(ref, res, () => new NotFoundError("blob", `${desc.digest} in ${familiarRepository(ref)}`));
    }
    const verifier = new DigestVerifier(desc.digest, desc.size, `blob ${desc.digest} of ${familiarRepository(ref)}`);
    return guarded(verified(res.body as AsyncIterable<Buffer>, verifier), ref.domain, `blob ${desc.digest}`);
  }

  /** A small blob (an image config) in memory, verified. */
  async getBlobBytes(
    ref: ImageReference,
    desc: Pick<Descriptor, "digest" | "size">,
    limit: number,
    ctx: RequestContext = {},
  ): Promise<Buffer> {
    if (desc.size > limit) throw new InvalidError(`blob ${desc.digest} is ${desc.size} bytes, over the ${limit}-byte limit`);
    const chunks: Buffer[] = [];
    for await (const chunk of await this.getBlob(ref, desc, ctx)) chunks.push(chunk);
    return Buffer.concat(chunks);
  }

  /**
   * One request to `ref`'s repository with the given scope (`pull` or `pull,push`): answers the
   * registry's challenge once and retries. Auth refusals come back as the 401/403 response, so
   * the caller can word them (push and login do so differently from pull).
   */
  async call(
    ref: ImageReference,
    method: "GET" | "HEAD" | "POST" | "PUT" | "PATCH",
    path: string,
    opts: { headers?: Record<string, string>; body?: Buffer | (() => NodeJS.ReadableStream); actions?: string },
    ctx: RequestContext = {},
  ): Promise<HttpResponse> {
    const origin = this.baseUrl(ref.domain);
    const scope = ref.path ? `repository:${ref.path}:${opts.actions ?? "pull"}` : "";
    const key = `${ref.domain}|${scope}`;
    const url = new URL(path, origin);
    for (let attempt = 0; ; attempt++) {
      const headers: Record<string, string> = { "user-agent": this.userAgent(), ...(opts.headers ?? {}) };
      const authorization = url.origin === origin.origin ? this.validAuth(key) : undefined;
      if (authorization) headers.authorization = authorization;
      const res = await this.request(ref.domain, url, headers, ctx, method, opts.body);
      if (res.status !== 401 || attempt > 0 || !res.headers["www-authenticate"]) return res;
      discard(res);
      try {
        await this.authenticate(ref, scope, res.headers["www-authenticate"], ctx);
      } catch (e) {
        if (e instanceof PullAccessDeniedError)
          return {
            ...res,
            status: 401,
            body: Object.assign(
              Readable.from([Buffer.from('{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}')]),
              {},
            ) as unknown as HttpResponse["body"],
          };
        throw e;
      }
    }
  }

  /** The registry's error text of a failed answer (`unauthorized: authentication required`). */
  async errorText(res: HttpResponse): Promise<string> {
    return registryErrorText(await readBody(res, 64 << 10).catch(() => Buffer.alloc(0)));
  }

  private userAgent(): string {
    return this.opts.userAgent ?? "flotilla-agent";
  }

  /** Sends a GET for `ref`'s repository, authenticating and following redirects as needed. */
  private async send(ref: ImageReference, path: string, accept: string | undefined, ctx: RequestContext): Promise<HttpResponse> {
    const origin = this.baseUrl(ref.domain);
    const scope = `repository:${ref.path}:pull`;
    const key = `${ref.domain}|${scope}`;
    let url = new URL(path, origin);
    let authenticated = false;
    for (let redirects = 0; ;) {
      const own = url.origin === origin.origin;
      if (own && !this.validAuth(key) && this.challenges.has(ref.domain) && !authenticated) {
        authenticated = true;
        await this.authenticate(ref, scope, this.challenges.get(ref.domain), ctx);
      }
      const headers: Record<string, string> = { "user-agent": this.userAgent(), ...(accept ? { accept } : {}) };
      // Credentials go to the registry only, never to a redirect target such as object storage.
      const authorization = own ? this.validAuth(key) : undefined;
      if (authorization) headers.authorization = authorization;
      const res = await this.request(ref.domain, url, headers, ctx);
      if (res.status === 401 && own && !authenticated && res.headers["www-authenticate"]) {
        discard(res);
        authenticated = true;
        this.challenges.set(ref.domain, res.headers["www-authenticate"]);
        await this.authenticate(ref, scope, res.headers["www-authenticate"], ctx);
        continue;
      }
      if ([301, 302, 303, 307, 308].includes(res.status) && res.headers.location) {
        discard(res);
        if (++redirects > REDIRECT_LIMIT)
          throw new RegistryUnavailableError(ref.domain, `more than ${REDIRECT_LIMIT} redirects for ${path}`);
        const next = new URL(res.headers.location, url);
        if (url.protocol === "https:" && next.protocol !== "https:" && !isInsecureRegistry(next.host, this.opts.insecureRegistries ?? [])) {
          throw new RegistryUnavailableError(ref.domain, `refusing redirect from https to plain ${next.origin}`);
        }
        url = next;
        continue;
      }
      return res;
    }
  }

  private validAuth(key: string): string | undefined {
    const entry = this.auth.get(key);
    return entry && entry.expires > Date.now() ? entry.header : undefined;
  }

  /** Answers a challenge: fetches a Bearer token from its realm, or prepares Basic credentials. */
  private async authenticate(
    ref: ImageReference,
    scope: string,
    header: string | string[] | undefined,
    ctx: RequestContext,
  ): Promise<void> {
    const challenges = parseAuthChallenges(header);
    const creds = ctx.credentials ?? this.opts.credentials?.(ref.domain);
    const key = `${ref.domain}|${scope}`;
    const repo = familiarRepository(ref);
    const basic = creds ? `Basic ${Buffer.from(`${creds.username}:${creds.password}`).toString("base64")}` : undefined;
    const bearer = challenges.find((c) => c.scheme === "bearer");
    if (bearer) {
      let realm: URL;
      try {
        realm = new URL(bearer.params.realm ?? "");
      } catch {
        throw new RegistryUnavailableError(ref.domain, `Bearer challenge with a bad realm: ${JSON.stringify(bearer.params.realm)}`);
      }
      if (bearer.params.service) realm.searchParams.set("service", bearer.params.service);
      realm.searchParams.set("scope", scope);
      const headers: Record<string, string> = { "user-agent": this.userAgent() };
      // A password crosses the wire only over TLS, or to a token service we were told is plain HTTP.
      if (basic && (realm.protocol === "https:" || isInsecureRegistry(realm.host, this.opts.insecureRegistries ?? []))) {
        headers.authorization = basic;
      }
      const res = await this.request(ref.domain, realm, headers, ctx);
      if (res.status === 401 || res.status === 403) {
        discard(res);
        throw new PullAccessDeniedError(repo, `token service ${realm.origin} refused ${creds ? "the credentials" : "anonymous access"}`);
      }
      const body = await readBody(res, TOKEN_LIMIT).catch((e: Error) => {
        throw new RegistryUnavailableError(ref.domain, `token service: ${e.message}`);
      });
      if (res.status !== 200)
        throw new RegistryUnavailableError(ref.domain, `token service ${realm.origin} answered ${res.status}: ${registryErrorText(body)}`);
      let token: unknown;
      let expiresIn = 60;
      try {
        const json = JSON.parse(body.toString("utf8")) as { token?: unknown; access_token?: unknown; expires_in?: unknown };
        token = json.token ?? json.access_token;
        if (typeof json.expires_in === "number" && json.expires_in > 0) expiresIn = json.expires_in;
      } catch {
        // Handled below as "no token".
      }
      if (typeof token !== "string" || token === "")
        throw new RegistryUnavailableError(ref.domain, `token service ${realm.origin} sent no token`);
      // Renew a little early so a token never expires between check and use.
      this.auth.set(key, { header: `Bearer ${token}`, expires: Date.now() + Math.max(1, expiresIn - 5) * 1000 });
      return;
    }
    if (challenges.some((c) => c.scheme === "basic")) {
      if (!basic) throw new PullAccessDeniedError(repo, "authentication required");
      this.auth.set(key, { header: basic, expires: Number.POSITIVE_INFINITY });
      return;
    }
    throw new RegistryUnavailableError(ref.domain, `unsupported authentication challenge: ${String(header)}`);
  }

  /** Throws the error that fits a non-200 answer; `notFound` builds the 404 one. */
  private async fail(ref: ImageReference, res: HttpResponse, notFound: () => Error): Promise<never> {
    const text = registryErrorText(await readBody(res, 64 << 10).catch(() => Buffer.alloc(0)));
    if (res.status === 404) throw notFound();
    if (res.status === 401 || res.status === 403) throw new PullAccessDeniedError(familiarRepository(ref), text || undefined);
    throw new RegistryUnavailableError(ref.domain, `GET ${res.url.pathname} answered ${res.status}${text ? `: ${text}` : ""}`);
  }

  /** One request; network and TLS failures become RegistryUnavailableError with a hint. */
  private async request(
    domain: string,
    url: URL,
    headers: Record<string, string>,
    ctx: RequestContext,
    method: HttpRequestOptions["method"] = "GET",
    body?: HttpRequestOptions["body"],
  ): Promise<HttpResponse> {
    try {
      return await httpRequest(url, { method, headers, body, signal: ctx.signal, ca: this.opts.ca, timeoutMs: this.opts.timeoutMs });
    } catch (e) {
      const err = e as NodeJS.ErrnoException;
      if (err.name === "AbortError") throw err;
      // OpenSSL messages span lines; an error message for the CLI should not.
      const message = err.message.replace(/\s+/g, " ").trim();
      const text = `${err.code ?? ""} ${message}`;
      if (url.protocol === "https:" && /EPROTO|wrong version number|packet length too long|ECONNRESET/i.test(text)) {
        throw new RegistryUnavailableError(
          domain,
          `https to ${url.host} failed (${message}); if it serves plain HTTP, list it in insecureRegistries`,
        );
      }
      if (/CERT|SELF_SIGNED|UNABLE_TO_VERIFY|ERR_TLS/.test(err.code ?? "")) {
        throw new RegistryUnavailableError(
          domain,
          `TLS certificate of ${url.host} not trusted (${message}); pass its CA in the store options`,
        );
      }
      throw new RegistryUnavailableError(domain, `${url.host} unreachable: ${message}`);
    }
  }
}
