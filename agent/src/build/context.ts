/**
 * The build context: the tar the client sends (plain or gzip), unpacked into a directory with
 * the same path safety as image layers (nothing written through a symlink, nothing outside),
 * under a size limit counted on the bytes received. `.dockerignore` is applied again here (the
 * CLI already leaves ignored files out; other clients may not).
 */
import * as fs from "node:fs/promises";
import { join } from "node:path";
import { InvalidError } from "@flotilla/core";
import { applyLayer } from "../images/layer-apply";
import { decompressorFor } from "../images/layer-store";
import { humanSize } from "../images/progress";
import { isIgnored, parseDockerignore } from "./dockerignore";

export class ContextTooLargeError extends InvalidError {}

async function* limited(source: AsyncIterable<Buffer>, limit: number): AsyncGenerator<Buffer> {
  let total = 0;
  for await (const chunk of source) {
    total += chunk.length;
    if (total > limit) {
      throw new ContextTooLargeError(
        `build context is larger than the agent's limit of ${humanSize(limit)} (--build-context-limit); leave out what the build does not need with a .dockerignore file`,
      );
    }
    yield chunk;
  }
}

/** Peeks the first bytes to choose a decompressor, then replays them. */
async function* decompressed(source: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
  const it = source[Symbol.asyncIterator]();
  let head = Buffer.alloc(0);
  while (head.length < 4) {
    const r = await it.next();
    if (r.done) break;
    head = Buffer.concat([head, r.value]);
  }
  const rest: AsyncIterable<Buffer> = {
    async *[Symbol.asyncIterator]() {
      if (head.length) yield head;
      for (let r = await it.next(); !r.done; r = await it.next()) yield r.value;
    },
  };
  const magic = Buffer.concat([head, Buffer.alloc(4)]).subarray(0, 4);
  const decompress = head.length >= 4 ? decompressorFor(magic, "build context") : undefined;
  if (!decompress) {
    yield* rest;
    return;
  }
  const { Readable } = await import("node:stream");
  yield* Readable.from(rest).pipe(decompress) as AsyncIterable<Buffer>;
}

/** Unpacks the context into `dir` (which must exist and be empty). */
export async function receiveContext(source: AsyncIterable<Buffer>, dir: string, limit: number): Promise<void> {
  try {
    await applyLayer(decompressed(limited(source, limit)), dir, { layer: "build context" });
  } catch (e) {
    if (e instanceof ContextTooLargeError) throw e;
    if (e instanceof InvalidError) throw new InvalidError(`invalid build context: ${e.message.replace(/^layer build context: /, "")}`);
    throw e;
  }
}

/** Removes what `.dockerignore` excludes, except the Dockerfile and .dockerignore themselves. */
export async function applyDockerignore(dir: string, dockerfile: string): Promise<void> {
  let text: string;
  try {
    text = await fs.readFile(join(dir, ".dockerignore"), "utf8");
  } catch {
    return;
  }
  const patterns = parseDockerignore(text);
  if (patterns.length === 0) return;
  const keep = new Set([dockerfile, ".dockerignore"]);
  const walk = async (rel: string): Promise<void> => {
    for (const entry of await fs.readdir(rel ? join(dir, rel) : dir, { withFileTypes: true })) {
      const path = rel ? `${rel}/${entry.name}` : entry.name;
      if (!keep.has(path) && isIgnored(path, patterns)) {
        // A `!` exception below an ignored directory still needs the directory walked.
        if (entry.isDirectory() && patterns.some((p) => p.exclusion && p.pattern.startsWith(`${path}/`))) await walk(path);
        else await fs.rm(join(dir, path), { recursive: true, force: true });
      } else if (entry.isDirectory()) await walk(path);
    }
  };
  await walk("");
}
