import { describe, expect, it } from "vitest";
import fc from "fast-check";
import {
  afterEvents,
  afterRemoteEvents,
  afterStream,
  copyServable,
  copyUse,
  REMOTE_REFRESH_MS,
  INITIAL_LISTING_FRESHNESS,
  LISTING_KINDS,
  listingsChangedBy,
  type ListingCopy,
  type ListingFreshness,
  type ListingKind,
} from "../src/listing-freshness";

const live: ListingFreshness = afterStream(INITIAL_LISTING_FRESHNESS, true);
const copyOf = (f: ListingFreshness, kind: ListingKind, readAt: number): ListingCopy => ({ kind, generation: f.generations[kind], readAt });

describe("listingsChangedBy", () => {
  it.each([
    ["task", ["services", "nodes", "tasks"]],
    ["service", ["services", "tasks"]],
    ["node", ["nodes", "tasks"]],
    ["network", ["services"]],
    ["machine", []],
    ["token", []],
    ["secret", []],
    ["config", []],
    ["audit", []],
    // A kind added later and not listed here: every listing, so no change is missed.
    ["volume", ["services", "nodes", "tasks"]],
    ["constructor", ["services", "nodes", "tasks"]],
  ])("%s → %j", (kind, listings) => {
    expect([...listingsChangedBy(kind)].sort()).toEqual([...listings].sort());
  });
});

describe("copyServable", () => {
  it("serves a copy of the current generation within its age while the stream is live", () => {
    const c = copyOf(live, "services", 1_000);
    expect(copyServable(c, live, 1_000, 1_000)).toBe(true);
    expect(copyServable(c, live, 1_999, 1_000)).toBe(true);
    expect(copyServable(c, live, 2_000, 1_000)).toBe(false);
    // A clock that went back: the copy's age is unknown.
    expect(copyServable(c, live, 999, 1_000)).toBe(false);
  });

  it("an event of a kind the listing shows retires the copy; others leave it", () => {
    const services = copyOf(live, "services", 0);
    const nodes = copyOf(live, "nodes", 0);
    const tasks = copyOf(live, "tasks", 0);
    const afterNetwork = afterEvents(live, ["network"]);
    expect(copyServable(services, afterNetwork, 1, 1_000)).toBe(false);
    expect(copyServable(nodes, afterNetwork, 1, 1_000)).toBe(true);
    expect(copyServable(tasks, afterNetwork, 1, 1_000)).toBe(true);
    const afterAudit = afterEvents(live, ["audit", "token"]);
    expect(afterAudit).toBe(live);
    const afterTask = afterEvents(live, ["task"]);
    for (const c of [services, nodes, tasks]) expect(copyServable(c, afterTask, 1, 1_000)).toBe(false);
  });

  it("nothing is served while the stream is down, nor what was read before it came back", () => {
    const c = copyOf(live, "nodes", 0);
    const down = afterStream(live, false);
    expect(copyServable(c, down, 1, 1_000)).toBe(false);
    // Read while down: not servable once it is up again (events may have been missed meanwhile).
    const readWhileDown = copyOf(down, "nodes", 2);
    expect(copyServable(readWhileDown, down, 3, 1_000)).toBe(false);
    const up = afterStream(down, true);
    expect(copyServable(c, up, 4, 1_000)).toBe(false);
    expect(copyServable(readWhileDown, up, 4, 1_000)).toBe(false);
    expect(copyServable(copyOf(up, "nodes", 5), up, 6, 1_000)).toBe(true);
  });

  it("property: a copy is never served after any event that changes its listing, nor past its age", () => {
    const step = fc.oneof(
      fc.record({
        events: fc.array(fc.constantFrom("task", "service", "node", "network", "machine", "audit", "volume"), { maxLength: 3 }),
      }),
      fc.record({ stream: fc.boolean() }),
    );
    fc.assert(
      fc.property(fc.constantFrom(...LISTING_KINDS), fc.array(step, { maxLength: 8 }), fc.nat(3_000), (kind, steps, age) => {
        const c = copyOf(live, kind, 0);
        let f = live;
        let changed = false;
        for (const s of steps) {
          if ("events" in s) {
            f = afterEvents(f, s.events);
            changed ||= s.events.some((e) => listingsChangedBy(e).includes(kind));
          } else {
            f = afterStream(f, s.stream);
            changed = true;
          }
        }
        const served = copyServable(c, f, age, 1_000);
        expect(served).toBe(!changed && age < 1_000);
      }),
    );
  });
});

describe("copyUse: other processes' events", () => {
  const read = (f: ListingFreshness, kind: ListingKind, readAt: number): ListingCopy => ({
    kind,
    generation: f.generations[kind],
    remote: f.remote[kind],
    readAt,
  });

  it("a copy another process's event made stale still answers, and asks for a newer read once kept REMOTE_REFRESH_MS", () => {
    const c = read(live, "services", 0);
    expect(copyUse(c, live, 1, 1_000)).toBe("serve");
    const after = afterRemoteEvents(live, ["task"]);
    expect(copyUse(c, after, 249, 1_000)).toBe("serve");
    expect(copyUse(c, after, 250, 1_000)).toBe("serve-and-refresh");
    expect(copyUse(read(after, "services", 2), after, 300, 1_000)).toBe("serve");
    // Not past its age, nor after this process's own event or a break of the stream.
    expect(copyUse(c, after, 1_000, 1_000)).toBe("read");
    expect(copyUse(c, afterEvents(after, ["task"]), 1, 1_000)).toBe("read");
    expect(copyUse(c, afterStream(after, false), 1, 1_000)).toBe("read");
  });

  it("counts the quarter from when the copy was kept, so a slow read does not make reads back to back", () => {
    const c = { ...read(live, "services", 0), keptAt: 200 };
    const after = afterRemoteEvents(live, ["task"]);
    expect(copyUse(c, after, 449, 1_000)).toBe("serve");
    expect(copyUse(c, after, 450, 1_000)).toBe("serve-and-refresh");
    // Half its age still asks for a read whenever it was kept.
    expect(copyUse({ ...c, keptAt: 499 }, live, 500, 1_000)).toBe("serve-and-refresh");
    // A long max age does not hold task changes back longer: REMOTE_REFRESH_MS at most.
    expect(copyUse(c, after, 200 + REMOTE_REFRESH_MS - 1, 60_000)).toBe("serve");
    expect(copyUse(c, after, 200 + REMOTE_REFRESH_MS, 60_000)).toBe("serve-and-refresh");
  });

  it("past half its age a copy still answers, and asks for a newer read", () => {
    const c = read(live, "tasks", 0);
    expect(copyUse(c, live, 499, 1_000)).toBe("serve");
    expect(copyUse(c, live, 500, 1_000)).toBe("serve-and-refresh");
    expect(copyUse(c, live, 999, 1_000)).toBe("serve-and-refresh");
    expect(copyUse(c, live, 1_000, 1_000)).toBe("read");
  });

  it("an event of a kind the listing does not show leaves it as it was", () => {
    const c = read(live, "nodes", 0);
    expect(copyUse(c, afterRemoteEvents(live, ["network", "audit"]), 1, 1_000)).toBe("serve");
  });

  it("a service, node or network event from elsewhere (a write through another replica) retires the copy", () => {
    const c = read(live, "services", 0);
    expect(copyUse(c, afterRemoteEvents(live, ["service"]), 1, 1_000)).toBe("read");
    expect(copyUse(c, afterRemoteEvents(live, ["network"]), 1, 1_000)).toBe("read");
    expect(copyUse(c, afterRemoteEvents(live, ["task", "service"]), 1, 1_000)).toBe("read");
    expect(copyUse(read(live, "nodes", 0), afterRemoteEvents(live, ["node"]), 1, 1_000)).toBe("read");
  });

  it("property: served as current only if no event changed its listing since its read and it is young; never past its age", () => {
    const step = fc.record({
      events: fc.array(fc.constantFrom("task", "service", "node", "network", "machine", "audit"), { maxLength: 3 }),
      remote: fc.boolean(),
    });
    fc.assert(
      fc.property(fc.constantFrom(...LISTING_KINDS), fc.array(step, { maxLength: 8 }), fc.nat(3_000), (kind, steps, age) => {
        const c = read(live, kind, 0);
        let f = live;
        let local = false;
        let remote = false;
        for (const s of steps) {
          f = s.remote ? afterRemoteEvents(f, s.events) : afterEvents(f, s.events);
          const changes = (es: string[]) => es.some((e) => listingsChangedBy(e).includes(kind));
          // From the stream only task events make a copy stale; other kinds retire it.
          if (s.remote) {
            remote ||= changes(s.events.filter((e) => e === "task"));
            local ||= changes(s.events.filter((e) => e !== "task"));
          } else local ||= changes(s.events);
        }
        const use = copyUse(c, f, age, 1_000);
        if (local || age >= 1_000) expect(use).toBe("read");
        else expect(use).toBe((remote && age >= 250) || age >= 500 ? "serve-and-refresh" : "serve");
      }),
    );
  });
});
