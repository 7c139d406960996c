/**
 * Build cache keys, as Docker's classic builder decides a hit: the same parent image, the same
 * step (its history line, which for COPY/ADD carries the content hash of the files and for RUN
 * the build arguments in scope) and the same resulting configuration. Pure.
 */
import { createHash } from "node:crypto";
import type { RunConfig } from "./instructions";

export function stepCacheKey(parentId: string, createdBy: string, config: RunConfig, extra = ""): string {
  const h = createHash("sha256");
  h.update(JSON.stringify([parentId, createdBy, config, extra]));
  return `sha256:${h.digest("hex")}`;
}
