// A listing answer built once and sent to every request that shares it (see listing-views.ts):
// the JSON text and its ETag, and its gzip encoding, made once too, for the clients that accept
// it (browsers, and ctl's fetch, ask for it by themselves): a listing is JSON that compresses
// several times over, and bytes written are most of what an answer costs under load. A client
// that sends the ETag back (If-None-Match, as the console's browser does on its re-fetches)
// gets 304 with no body while nothing changed.
import { createHash } from "node:crypto";
import { gzipSync } from "node:zlib";
import type { FastifyReply, FastifyRequest } from "fastify";
import { applyDecorators } from "@nestjs/common";
import { ApiHeader, ApiResponse } from "@nestjs/swagger";

export interface Listing {
  /** The JSON text of the answer, encoded once (not once per request that shares it). */
  body: Buffer;
  /** A strong validator of exactly these bytes. */
  etag: string;
  /** The same gzip-encoded, made on first use; none for a body too small to gain from it. */
  gzip?: Buffer;
}

// Below this, gzip's header and a turn of the compressor cost more than the bytes saved.
const GZIP_MIN_BYTES = 1024;

export function toListing(value: unknown): Listing {
  const body = Buffer.from(JSON.stringify(value));
  return { body, etag: `"${createHash("sha1").update(body).digest("base64url")}"` };
}

/**
 * The gzip variant's validator: another representation needs another strong tag (RFC 9110
 * 8.8.3); the JSON's tag with a suffix, so either one sent back names the same version.
 */
const gzipTag = (etag: string) => `${etag.slice(0, -1)}-gz"`;

/** Whether an Accept-Encoding header accepts gzip (listed, or `*`, without q=0). */
export function acceptsGzip(acceptEncoding: string | undefined): boolean {
  if (!acceptEncoding) return false;
  let star = false;
  for (const part of acceptEncoding.split(",")) {
    const [coding, ...params] = part.trim().toLowerCase().split(";");
    const zero = params.some((p) => /^\s*q\s*=\s*0(\.0*)?\s*$/.test(p));
    if (coding === "gzip" || coding === "x-gzip") return !zero;
    if (coding === "*") star = !zero;
  }
  return star;
}

/**
 * Whether an If-None-Match header matches `etag` (RFC 9110 13.1.2: weak comparison, a list of
 * tags or `*`).
 */
export function etagMatches(ifNoneMatch: string | undefined, etag: string): boolean {
  if (!ifNoneMatch) return false;
  if (ifNoneMatch.trim() === "*") return true;
  const opaque = (tag: string) => tag.trim().replace(/^W\//, "");
  const mine = opaque(etag);
  return ifNoneMatch.split(",").some((tag) => opaque(tag) === mine);
}

/**
 * Answers with the listing, or 304 when the client already has it. `no-cache`: a browser may
 * keep it but must revalidate every time; `private`: it carries a token holder's view.
 */
export function sendListing(req: FastifyRequest, reply: FastifyReply, listing: Listing): Buffer | string {
  const gzip = listing.body.length >= GZIP_MIN_BYTES && acceptsGzip(req.headers["accept-encoding"]);
  const etag = gzip ? gzipTag(listing.etag) : listing.etag;
  void reply.header("etag", etag).header("cache-control", "private, no-cache").header("vary", "accept-encoding");
  const ifNoneMatch = req.headers["if-none-match"];
  if (etagMatches(ifNoneMatch, listing.etag) || etagMatches(ifNoneMatch, gzipTag(listing.etag))) {
    void reply.status(304);
    return "";
  }
  void reply.header("content-type", "application/json; charset=utf-8");
  if (!gzip) return listing.body;
  listing.gzip ??= gzipSync(listing.body, { level: 6 });
  void reply.header("content-encoding", "gzip");
  return listing.gzip;
}

/** OpenAPI: the ETag, If-None-Match and 304 of a listing, and its gzip encoding. */
export const ApiListing = () =>
  applyDecorators(
    ApiHeader({ name: "If-None-Match", required: false, description: "an ETag of an earlier answer: 304 with no body if it still holds" }),
    ApiHeader({
      name: "Accept-Encoding",
      required: false,
      description: "with gzip (as browsers and fetch send it): the answer gzip-encoded when over 1 KiB, under its own ETag (suffix -gz)",
    }),
    ApiResponse({
      status: 200,
      description: "the listing (JSON)",
      headers: {
        ETag: { description: "strong validator of this answer; send it back as If-None-Match", schema: { type: "string" } },
        "Cache-Control": { description: "private, no-cache: keep it, but revalidate every time", schema: { type: "string" } },
        "Content-Encoding": {
          description: "gzip when asked for (Accept-Encoding) and the answer is over 1 KiB",
          schema: { type: "string" },
        },
        Vary: { description: "accept-encoding", schema: { type: "string" } },
      },
    }),
    ApiResponse({ status: 304, description: "not modified since the answer whose ETag was sent (If-None-Match)" }),
  );
