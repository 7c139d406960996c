import { describe, expect, it } from "vitest";
import { SharedReads } from "../src/common/shared-reads";
import { acceptsGzip, etagMatches, toListing } from "../src/common/listing";

/** A load whose queries finish when the test says so; each answers with its own number. */
function controlled() {
  const queries: { finish: (fail?: Error) => void }[] = [];
  const load = () =>
    new Promise<number>((resolve, reject) => {
      const n = queries.length + 1;
      queries.push({ finish: (fail) => (fail ? reject(fail) : resolve(n)) });
    });
  return { queries, load };
}

const tick = () => new Promise((r) => setImmediate(r));

describe("SharedReads", () => {
  it("runs one query for a read alone, and one more for every read that arrives while it runs", async () => {
    const reads = new SharedReads<number>();
    const { queries, load } = controlled();
    const first = reads.read("k", load);
    await tick();
    expect(queries).toHaveLength(1);
    // Arrived after the first query started: it may miss their writes, so they wait for the next.
    const later = [reads.read("k", load), reads.read("k", load), reads.read("k", load)];
    await tick();
    expect(queries).toHaveLength(1);
    queries[0]!.finish();
    expect(await first).toBe(1);
    await tick();
    expect(queries).toHaveLength(2);
    queries[1]!.finish();
    expect(await Promise.all(later)).toEqual([2, 2, 2]);
    await tick();
    expect(reads.size).toBe(0);
  });

  it("keeps keys apart", async () => {
    const reads = new SharedReads<number>();
    const { queries, load } = controlled();
    const a = reads.read("a", load);
    const b = reads.read("b", load);
    await tick();
    expect(queries).toHaveLength(2);
    queries[0]!.finish();
    queries[1]!.finish();
    expect([await a, await b]).toEqual([1, 2]);
  });

  it("hands a failed query's error to its readers only, and the next query runs for the waiting ones", async () => {
    const reads = new SharedReads<number>();
    const { queries, load } = controlled();
    const first = reads.read("k", load);
    await tick();
    const second = reads.read("k", load);
    queries[0]!.finish(new Error("connection lost"));
    await expect(first).rejects.toThrow("connection lost");
    await tick();
    queries[1]!.finish();
    expect(await second).toBe(2);
  });

  it("turns a load that throws synchronously into a rejection", async () => {
    const reads = new SharedReads<number>();
    await expect(
      reads.read("k", () => {
        throw new Error("boom");
      }),
    ).rejects.toThrow("boom");
    expect(reads.size).toBe(0);
  });
});

describe("listing ETags", () => {
  it("are the same for the same JSON and differ otherwise", () => {
    expect(toListing([{ a: 1 }]).etag).toBe(toListing([{ a: 1 }]).etag);
    expect(toListing([{ a: 1 }]).etag).not.toBe(toListing([{ a: 2 }]).etag);
    expect(toListing([{ a: 1 }]).body.toString()).toBe('[{"a":1}]');
  });

  it("match If-None-Match by weak comparison, in a list, or *", () => {
    const { etag } = toListing([1]);
    expect(etagMatches(etag, etag)).toBe(true);
    expect(etagMatches(`W/${etag}`, etag)).toBe(true);
    expect(etagMatches(`"other", ${etag}`, etag)).toBe(true);
    expect(etagMatches("*", etag)).toBe(true);
    expect(etagMatches('"other"', etag)).toBe(false);
    expect(etagMatches(undefined, etag)).toBe(false);
    expect(etagMatches("", etag)).toBe(false);
  });
});

describe("listing encodings", () => {
  it.each([
    ["gzip, deflate", true],
    ["gzip, deflate, br, zstd", true],
    ["br;q=1.0, gzip;q=0.8, *;q=0.1", true],
    ["x-gzip", true],
    ["*", true],
    ["identity", false],
    ["deflate, br", false],
    ["gzip;q=0", false],
    ["gzip; q=0.000", false],
    ["*;q=0", false],
    ["", false],
    [undefined, false],
  ])("Accept-Encoding %j accepts gzip: %s", (header, gzip) => {
    expect(acceptsGzip(header)).toBe(gzip);
  });
});
