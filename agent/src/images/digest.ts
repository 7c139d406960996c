/**
 * sha256 digests: checking their form, computing them, and verifying content while it streams,
 * so nothing unverified is trusted and an endless or oversized body is cut off early.
 */
import { createHash, type Hash } from "node:crypto";
import { InvalidError } from "@flotilla/core";
import { DigestMismatchError } from "./errors";

const SHA256 = /^sha256:[a-f0-9]{64}$/;

/** True for `sha256:` followed by 64 lowercase hex digits, the only algorithm we accept. */
export function isDigest(s: string): boolean {
  return SHA256.test(s);
}

/** Returns `digest` unchanged, or throws InvalidError naming `what` (a manifest field, say). */
export function assertDigest(digest: unknown, what: string): string {
  if (typeof digest !== "string" || !SHA256.test(digest)) {
    throw new InvalidError(`${what}: unsupported or malformed digest ${JSON.stringify(digest)} (want sha256:<64 hex>)`);
  }
  return digest;
}

/** The hex part, used for file names. */
export function digestHex(digest: string): string {
  return digest.slice("sha256:".length);
}

export function sha256Of(data: Buffer | string): string {
  return `sha256:${createHash("sha256").update(data).digest("hex")}`;
}

/**
 * Hashes and counts content as it passes. `push` throws as soon as more than `size` bytes arrive;
 * `finish` throws on a short body or a wrong digest.
 */
export class DigestVerifier {
  private readonly hash: Hash = createHash("sha256");
  private count = 0;

  constructor(
    readonly expected: string,
    readonly size: number | undefined,
    readonly what: string,
  ) {}

  get bytes(): number {
    return this.count;
  }

  push(chunk: Buffer): void {
    this.count += chunk.length;
    if (this.size !== undefined && this.count > this.size) {
      throw new DigestMismatchError(this.what, this.expected, `more than the ${this.size} bytes announced`);
    }
    this.hash.update(chunk);
  }

  finish(): void {
    const actual = `sha256:${this.hash.digest("hex")}`;
    if (this.size !== undefined && this.count !== this.size) {
      throw new DigestMismatchError(this.what, this.expected, `${this.count} bytes instead of ${this.size} (${actual})`);
    }
    if (actual !== this.expected) throw new DigestMismatchError(this.what, this.expected, actual);
  }
}

/** Passes `source` through, verified: the generator throws at the end (or early) on a mismatch. */
export async function* verified(source: AsyncIterable<Buffer>, verifier: DigestVerifier): AsyncGenerator<Buffer> {
  for await (const chunk of source) {
    verifier.push(chunk);
    yield chunk;
  }
  verifier.finish();
}
