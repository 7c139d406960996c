import { Subject } from "rxjs";
import { describe, expect, it } from "vitest";
import { contentVersion, VersionedTable } from "../src/common/versioned-table";

interface Table {
  version: string;
  n: number;
}

/** A table whose reads answer the content the test sets, and count themselves; a clock the test moves. */
function setup(options: { recheckMs?: number; maxWaitMs?: number; cacheMs?: number } = {}) {
  const events = new Subject<{ kind: string }>();
  let subscriptions = 0;
  const clock = { ms: 1_000_000 };
  const content = { n: 1 };
  const reads = { count: 0, during: undefined as (() => void) | undefined, fail: undefined as Error | undefined };
  const read = async (): Promise<Table> => {
    reads.count++;
    const n = content.n;
    // What happens while the read is under way (an event arriving, the content changing).
    const during = reads.during;
    reads.during = undefined;
    during?.();
    await Promise.resolve();
    if (reads.fail) throw reads.fail;
    return { version: `v${n}`, n };
  };
  const table = new VersionedTable<Table>({
    now: () => clock.ms,
    cacheMs: options.cacheMs ?? 500,
    recheckMs: options.recheckMs ?? 60_000,
    maxWaitMs: options.maxWaitMs ?? 60_000,
    events: () => {
      subscriptions++;
      return events;
    },
    kinds: new Set(["task"]),
  });
  return { table, events, clock, content, reads, read, subscriptions: () => subscriptions };
}

/** Lets the poll run until it waits (its read and the checks after it). */
const settle = () => new Promise((r) => setImmediate(r));

describe("VersionedTable", () => {
  it("answers a poll at once when the agent's version differs", async () => {
    const t = setup();
    expect(await t.table.waitFor(t.read, "v0", 1000)).toEqual({ version: "v1", n: 1 });
    expect(await t.table.waitFor(t.read, undefined, 1000)).toEqual({ version: "v1", n: 1 });
    expect(t.reads.count).toBe(2);
  });

  it("holds a poll until an event of a watched kind, ignoring the other kinds", async () => {
    const t = setup();
    let answer: Table | undefined | "waiting" = "waiting";
    const poll = t.table.waitFor(t.read, "v1", 30_000).then((a) => (answer = a));
    await settle();
    t.content.n = 2;
    t.events.next({ kind: "secret" });
    await settle();
    expect(answer).toBe("waiting");
    expect(t.reads.count).toBe(1);
    t.events.next({ kind: "task" });
    await poll;
    expect(answer).toEqual({ version: "v2", n: 2 });
    expect(t.reads.count).toBe(2);
  });

  it("reads again, rather than waiting, when the event arrived during its read", async () => {
    const t = setup();
    await t.table.waitFor(t.read, "v0", 0); // subscribed from here on
    t.reads.during = () => {
      t.content.n = 2;
      t.events.next({ kind: "task" });
    };
    // The first read saw the old content; the event it missed sends it to read again at once
    // (recheckMs is a minute: without the re-read this poll would still be waiting).
    expect(await t.table.waitFor(t.read, "v1", 30_000)).toEqual({ version: "v2", n: 2 });
    expect(t.reads.count).toBe(3);
  });

  it("reads again every recheckMs without events, and answers 'unchanged' at the deadline", async () => {
    const t = setup({ recheckMs: 5 });
    const poll = t.table.waitFor(t.read, "v1", 60_000);
    // Each recheck reads the unchanged content; then the clock passes the deadline.
    while (t.reads.count < 3) await new Promise((r) => setTimeout(r, 5));
    t.clock.ms += 60_000;
    expect(await poll).toBeUndefined();
    expect(t.reads.count).toBeGreaterThanOrEqual(3);
  });

  it("sees a change found by a recheck (no event)", async () => {
    const t = setup({ recheckMs: 5 });
    const poll = t.table.waitFor(t.read, "v1", 60_000);
    await settle();
    t.content.n = 3;
    expect(await poll).toEqual({ version: "v3", n: 3 });
  });

  it("caps the wait at maxWaitMs", async () => {
    const t = setup({ recheckMs: 5, maxWaitMs: 100 });
    const poll = t.table.waitFor(t.read, "v1", 60_000);
    await settle();
    t.clock.ms += 100;
    expect(await poll).toBeUndefined();
  });

  it("answers waiting polls with 'unchanged' on close, and unsubscribes", async () => {
    const t = setup();
    const polls = [t.table.waitFor(t.read, "v1", 30_000), t.table.waitFor(t.read, "v1", 30_000)];
    await settle();
    expect(t.events.observed).toBe(true);
    t.table.close();
    expect(await Promise.all(polls)).toEqual([undefined, undefined]);
    expect(t.events.observed).toBe(false);
  });

  it("subscribes once, on first use", async () => {
    const t = setup();
    expect(t.subscriptions()).toBe(0);
    await t.table.cached(t.read);
    expect(t.subscriptions()).toBe(0);
    t.table.watch();
    await t.table.waitFor(t.read, "v0", 0);
    t.table.watch();
    expect(t.subscriptions()).toBe(1);
  });

  it("shares one read within cacheMs, reads again after it or after a change", async () => {
    const t = setup({ cacheMs: 500 });
    t.table.watch();
    const [a, b] = await Promise.all([t.table.cached(t.read), t.table.cached(t.read)]);
    expect(a).toBe(b);
    t.clock.ms += 499;
    await t.table.cached(t.read);
    expect(t.reads.count).toBe(1);
    t.clock.ms += 1;
    await t.table.cached(t.read);
    expect(t.reads.count).toBe(2);
    t.content.n = 2;
    t.events.next({ kind: "task" });
    expect(await t.table.cached(t.read)).toEqual({ version: "v2", n: 2 });
    expect(t.reads.count).toBe(3);
  });

  it("does not serve a failed read to the next callers", async () => {
    const t = setup();
    t.reads.fail = new Error("db down");
    await expect(t.table.cached(t.read)).rejects.toThrow("db down");
    t.reads.fail = undefined;
    expect(await t.table.cached(t.read)).toEqual({ version: "v1", n: 1 });
    expect(t.reads.count).toBe(2);
  });
});

describe("contentVersion", () => {
  it("is equal for equal contents and differs for different ones", () => {
    expect(contentVersion({ a: [1, 2] })).toBe(contentVersion({ a: [1, 2] }));
    expect(contentVersion({ a: [1, 2] })).not.toBe(contentVersion({ a: [2, 1] }));
    expect(contentVersion([])).toMatch(/^[0-9a-f]{16}$/);
  });
});
