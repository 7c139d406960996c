import { describe, expect, it } from "vitest";
import { Batcher } from "../src/common/batcher";

/** A batch function whose batches finish when the test says so. */
function controlled() {
  const batches: { items: string[]; finish: (fail?: Error) => void }[] = [];
  const run = (items: string[]) =>
    new Promise<string[]>((resolve, reject) => {
      batches.push({ items, finish: (fail) => (fail ? reject(fail) : resolve(items.map((i) => `${i}!`))) });
    });
  return { batches, run };
}

const tick = () => new Promise((r) => setImmediate(r));

describe("Batcher", () => {
  it("sends a call alone when nothing runs, and groups the calls that arrive meanwhile", async () => {
    const { batches, run } = controlled();
    const b = new Batcher(run, { maxInFlight: 1, maxBatch: 10, key: (i: string) => i });
    const first = b.call("a");
    await tick();
    expect(batches.map((x) => x.items)).toEqual([["a"]]);
    const rest = ["b", "c", "d"].map((i) => b.call(i));
    await tick();
    expect(batches).toHaveLength(1);
    batches[0].finish();
    expect(await first).toBe("a!");
    await tick();
    expect(batches[1].items).toEqual(["b", "c", "d"]);
    batches[1].finish();
    expect(await Promise.all(rest)).toEqual(["b!", "c!", "d!"]);
  });

  it("never puts two calls with one key in a batch, nor runs them at once", async () => {
    const { batches, run } = controlled();
    const b = new Batcher(run, { maxInFlight: 2, maxBatch: 10, key: (i: string) => i[0] });
    const calls = ["a1", "a2", "b1", "a3", "c1"].map((i) => b.call(i));
    await tick();
    // a2 and a3 wait for a1's batch; b1 takes the second slot.
    expect(batches.map((x) => x.items)).toEqual([["a1"], ["b1"]]);
    batches[0].finish();
    await tick();
    // One call per key: a3 waits for a2.
    expect(batches.map((x) => x.items)).toEqual([["a1"], ["b1"], ["a2", "c1"]]);
    batches[1].finish();
    await tick();
    expect(batches).toHaveLength(3);
    batches[2].finish();
    await tick();
    expect(batches[3].items).toEqual(["a3"]);
    batches[3].finish();
    expect(await Promise.all(calls)).toEqual(["a1!", "a2!", "b1!", "a3!", "c1!"]);
  });

  it("caps a batch at maxBatch and fails only the calls of a failed batch", async () => {
    const { batches, run } = controlled();
    const b = new Batcher(run, { maxInFlight: 1, maxBatch: 2, key: (i: string) => i });
    const first = b.call("x");
    await tick();
    const queued = ["p", "q", "r"].map((i) => b.call(i));
    batches[0].finish(new Error("boom"));
    await expect(first).rejects.toThrow("boom");
    await tick();
    expect(batches[1].items).toEqual(["p", "q"]);
    batches[1].finish();
    await tick();
    expect(batches[2].items).toEqual(["r"]);
    batches[2].finish();
    expect(await Promise.all(queued)).toEqual(["p!", "q!", "r!"]);
  });
});
