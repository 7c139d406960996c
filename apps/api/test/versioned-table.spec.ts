import { BehaviorSubject, Subject } from "rxjs";
import type { TableEventScope } from "@flotilla/core";
import { describe, expect, it, vi } from "vitest";
import { contentVersion, VersionedTable } from "../src/common/versioned-table";

interface Table {
  version: string;
  n: number;
}

/** A table whose reads answer the content the test sets, and count themselves; a clock the test moves. */
function setup(
  options: {
    recheckMs?: number;
    maxWaitMs?: number;
    cacheMs?: number;
    liveCacheMs?: number;
    coalesceMs?: number;
    earlyShare?: number;
    random?: () => number;
    scope?: (e: { kind: string; subjectId?: string | null; data?: unknown }) => TableEventScope;
    live?: BehaviorSubject<boolean>;
  } = {},
) {
  const events = new Subject<{ kind: string; subjectId?: string | null; data?: unknown }>();
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
    ...(options.liveCacheMs !== undefined ? { liveCacheMs: options.liveCacheMs } : {}),
    recheckMs: options.recheckMs ?? 60_000,
    maxWaitMs: options.maxWaitMs ?? 60_000,
    events: () => {
      subscriptions++;
      return events;
    },
    kinds: new Set(["task"]),
    ...(options.coalesceMs !== undefined ? { coalesceMs: options.coalesceMs } : {}),
    ...(options.earlyShare !== undefined ? { earlyShare: options.earlyShare } : {}),
    ...(options.random ? { random: options.random } : {}),
    ...(options.scope ? { scope: options.scope } : {}),
    ...(options.live ? { streamLive: () => options.live! } : {}),
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

  it("ends an unchanged poll's wait up to earlyShare of it early, as the random draw says", async () => {
    for (const [draw, endsAt] of [
      [0, 60_000],
      [0.5, 52_500],
      [0.99, 45_150],
    ] as const) {
      const t = setup({ recheckMs: 5, earlyShare: 0.25, random: () => draw });
      let answered = false;
      const poll = t.table.waitFor(t.read, "v1", 60_000).then((a) => {
        answered = true;
        return a;
      });
      const start = t.clock.ms;
      t.clock.ms = start + endsAt - 1;
      const reads = t.reads.count;
      while (t.reads.count < reads + 2) await new Promise((r) => setTimeout(r, 5));
      expect(answered).toBe(false);
      t.clock.ms = start + endsAt;
      expect(await poll).toBeUndefined();
    }
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

  it("wakes waiting polls at the first change, then once per coalesceMs however many changes come", async () => {
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout"] });
    try {
      const t = setup({ coalesceMs: 250 });
      const polls = Array.from({ length: 3 }, () => t.table.waitFor(t.read, "v1", 30_000));
      await settle();
      expect(t.reads.count).toBe(3);
      // 40 changes 10 ms apart that leave the content as it was (another service's tasks, say).
      for (let i = 0; i < 40; i++) {
        t.events.next({ kind: "task" });
        await settle();
        await vi.advanceTimersByTimeAsync(10);
      }
      // Past the last window (each flush opens one).
      await vi.advanceTimersByTimeAsync(500);
      await settle();
      // Without coalescing each poll would have read again 40 times; here: at the first change,
      // and at the end of each of the two windows that held changes.
      expect(t.reads.count).toBe(3 + 3 * 3);
      t.content.n = 2;
      t.events.next({ kind: "task" });
      expect(await Promise.all(polls)).toEqual(Array.from({ length: 3 }, () => ({ version: "v2", n: 2 })));
    } finally {
      vi.useRealTimers();
    }
  });

  it("ignores the events its scope rules out", async () => {
    const t = setup({ scope: (e) => ((e.data as { serviceId?: string } | undefined)?.serviceId === "meshed" ? "all" : "none") });
    let answer: Table | undefined | "waiting" = "waiting";
    const poll = t.table.waitFor(t.read, "v1", 30_000).then((a) => (answer = a));
    await settle();
    t.content.n = 2;
    t.events.next({ kind: "task", data: { serviceId: "other" } });
    await settle();
    expect(answer).toBe("waiting");
    expect(t.reads.count).toBe(1);
    t.events.next({ kind: "task", data: { serviceId: "meshed" } });
    await poll;
    expect(answer).toEqual({ version: "v2", n: 2 });
  });

  it("wakes only the polls of the keys a change names", async () => {
    const t = setup({ scope: (e) => (e.subjectId ? { nodes: [e.subjectId] } : "all") });
    const answers: Record<string, Table | undefined | "waiting"> = { a: "waiting", b: "waiting" };
    const polls = (["a", "b"] as const).map((k) => t.table.waitFor(t.read, "v1", 30_000, k).then((x) => (answers[k] = x)));
    await settle();
    t.content.n = 2;
    t.events.next({ kind: "task", subjectId: "a" });
    await polls[0];
    await settle();
    expect(answers).toEqual({ a: { version: "v2", n: 2 }, b: "waiting" });
    expect(t.reads.count).toBe(3);
    t.events.next({ kind: "task" });
    await polls[1];
    expect(answers.b).toEqual({ version: "v2", n: 2 });
  });

  it("does not read again every recheckMs while the stream delivers, and reads again when it comes back", async () => {
    const live = new BehaviorSubject(true);
    const t = setup({ recheckMs: 20, live });
    let answer: Table | undefined | "waiting" = "waiting";
    const poll = t.table.waitFor(t.read, "v1", 30_000).then((a) => (answer = a));
    await new Promise((r) => setTimeout(r, 100));
    expect(t.reads.count).toBe(1);
    // A break: the change's event is lost; once the stream is back, the poll reads again.
    live.next(false);
    t.content.n = 2;
    live.next(true);
    await poll;
    expect(answer).toEqual({ version: "v2", n: 2 });
  });

  it("keeps the shared read over a change naming keys, with those keys marked; drops it over any other", async () => {
    const t = setup({ scope: (e) => (e.subjectId ? { nodes: [e.subjectId] } : "all") });
    t.table.watch();
    const first = t.table.cachedWithChanges(t.read);
    expect(await first.value).toEqual({ version: "v1", n: 1 });
    t.events.next({ kind: "task", subjectId: "a" });
    const again = t.table.cachedWithChanges(t.read);
    expect(again.value).toBe(first.value);
    expect([...again.changed]).toEqual(["a"]);
    // Marks made after a caller took the read reach it too: it checks them when it uses the read.
    t.events.next({ kind: "task", subjectId: "b" });
    expect([...first.changed]).toEqual(["a", "b"]);
    t.content.n = 2;
    t.events.next({ kind: "task" });
    const after = t.table.cachedWithChanges(t.read);
    expect(await after.value).toEqual({ version: "v2", n: 2 });
    expect(after.changed.size).toBe(0);
    expect(t.reads.count).toBe(2);
  });

  it("serves one read for liveCacheMs while the stream delivers, for cacheMs while it does not", async () => {
    const live = new BehaviorSubject(true);
    const t = setup({ cacheMs: 500, liveCacheMs: 5_000, live });
    t.table.watch();
    await t.table.cached(t.read);
    t.clock.ms += 4_999;
    await t.table.cached(t.read);
    expect(t.reads.count).toBe(1);
    t.clock.ms += 1;
    await t.table.cached(t.read);
    expect(t.reads.count).toBe(2);
    live.next(false);
    t.clock.ms += 500;
    await t.table.cached(t.read);
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
