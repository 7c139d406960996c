// A listing answer built once and sent to every request that shares it (see shared-reads.ts):
// the JSON text and its ETag. A client that sends the ETag back (If-None-Match, as the
// console's browser does on its re-fetches) gets 304 with no body while nothing changed.
import { createHash } from "node:crypto";
import type { FastifyReply, FastifyRequest } from "fastify";
import { applyDecorators } from "@nestjs/common";
import { ApiHeader, ApiResponse } from "@nestjs/swagger";

export interface Listing {
  /** The JSON text of the answer, encoded once (not once per request that shares it). */
  body: Buffer;
  /** A strong validator of exactly these bytes. */
  etag: string;
}

export function toListing(value: unknown): Listing {
  const body = Buffer.from(JSON.stringify(value));
  return { body, etag: `"${createHash("sha1").update(body).digest("base64url")}"` };
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
  void reply.header("etag", listing.etag).header("cache-control", "private, no-cache");
  if (etagMatches(req.headers["if-none-match"], listing.etag)) {
    void reply.status(304);
    return "";
  }
  void reply.header("content-type", "application/json; charset=utf-8");
  return listing.body;
}

/** OpenAPI: the ETag, If-None-Match and 304 of a listing. */
export const ApiListing = () =>
  applyDecorators(
    ApiHeader({ name: "If-None-Match", required: false, description: "an ETag of an earlier answer: 304 with no body if it still holds" }),
    ApiResponse({ status: 304, description: "not modified since the answer whose ETag was sent (If-None-Match)" }),
  );
