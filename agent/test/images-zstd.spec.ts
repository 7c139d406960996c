// zstd layers on Node 20: the decompressor chosen from the magic number is fzstd's streaming
// one (Node's zlib has zstd only from 22.15), checked against the zstd CLI's output byte for byte.
import { execFileSync, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { describe, expect, it } from "vitest";
import { decompressorFor } from "../src/images/layer-store";

const HAS_ZSTD = spawnSync("sh", ["-c", "command -v zstd"]).status === 0;

describe.skipIf(!HAS_ZSTD)("zstd layers", () => {
  it("decompresses a multi-frame zstd stream as the zstd tool made it", async () => {
    const plain = Buffer.concat([randomBytes(300_000), Buffer.alloc(2_000_000, "flotilla "), randomBytes(50_000)]);
    const frame = execFileSync("zstd", ["-q", "-c", "-3"], { input: plain, maxBuffer: 64 << 20 });
    const compressed = Buffer.concat([frame, execFileSync("zstd", ["-q", "-c", "-1"], { input: Buffer.from("tail\n") })]);
    const decompress = decompressorFor(compressed.subarray(0, 4), "test layer")!;
    expect(decompress).toBeDefined();
    const out: Buffer[] = [];
    // Small chunks, as a network stream delivers them.
    const chunks = Array.from({ length: Math.ceil(compressed.length / 7000) }, (_, i) => compressed.subarray(i * 7000, (i + 1) * 7000));
    await pipeline(Readable.from(chunks), decompress, async (s: AsyncIterable<Buffer>) => {
      for await (const c of s) out.push(c);
    });
    expect(Buffer.concat(out).equals(Buffer.concat([plain, Buffer.from("tail\n")]))).toBe(true);
  });

  it("fails on a truncated stream instead of ending quietly", async () => {
    const frame = execFileSync("zstd", ["-q", "-c"], { input: Buffer.alloc(1_000_000, "abc") });
    const cut = frame.subarray(0, Math.floor(frame.length / 2));
    const decompress = decompressorFor(cut.subarray(0, 4), "test layer")!;
    await expect(
      pipeline(Readable.from([cut]), decompress, async (s: AsyncIterable<Buffer>) => {
        for await (const _ of s) void _;
      }),
    ).rejects.toThrow();
  });
});
