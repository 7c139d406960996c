import type { TableEventScope } from "@flotilla/core";
import { overlayEventScope } from "@flotilla/core";
import { describe, expect, it } from "vitest";
import { TableServiceWatch, type TableFound } from "../src/common/table-services";

/** A watch whose reads of the watched set the test answers, and the verdicts it hands on. */
function setup() {
  const reads: { resolve(found: TableFound): void; reject(e: Error): void }[] = [];
  const woken: TableEventScope[] = [];
  const watch = new TableServiceWatch(
    overlayEventScope,
    () => new Promise<TableFound>((resolve, reject) => reads.push({ resolve, reject })),
  );
  watch.bind((scope) => woken.push(scope));
  // The set as a full read of the table found it: service "app" on a network.
  watch.reading()({ services: ["app"], networks: true });
  return { watch, reads, woken };
}
const settle = () => new Promise((r) => setImmediate(r));
const service = (id: string) => ({ kind: "service", subjectId: id, data: {} });
const task = (serviceId: string) => ({ kind: "task", subjectId: "t", data: { serviceId } });

describe("TableServiceWatch", () => {
  it("holds a service's event and those after it while the set is read, and wakes no one for a service outside it", async () => {
    const t = setup();
    expect(t.watch.scope(service("db"))).toBe("none");
    expect(t.watch.scope(task("db"))).toBe("none");
    expect(t.watch.scope(task("app"))).toBe("none");
    expect(t.reads).toHaveLength(1);
    t.reads[0]!.resolve({ services: ["app"], networks: true });
    await settle();
    // The held task of "app" matters.
    expect(t.woken).toEqual(["all"]);
    // Settled: judged at once again.
    expect(t.watch.scope(task("db"))).toBe("none");
    expect(t.watch.scope(task("app"))).toBe("all");
  });

  it("hands on nothing when no held event matters", async () => {
    const t = setup();
    t.watch.scope(service("db"));
    t.watch.scope(task("db"));
    t.reads[0]!.resolve({ services: ["app"], networks: true });
    await settle();
    expect(t.woken).toEqual([]);
  });

  it("wakes everyone for a service that joined the set", async () => {
    const t = setup();
    t.watch.scope(service("db"));
    t.reads[0]!.resolve({ services: ["app", "db"], networks: true });
    await settle();
    expect(t.woken).toEqual(["all"]);
    expect(t.watch.scope(task("db"))).toBe("all");
  });

  it("reads again when another service's event overtook the read", async () => {
    const t = setup();
    t.watch.scope(service("db"));
    t.watch.scope(service("cache"));
    t.reads[0]!.resolve({ services: ["app"], networks: true });
    await settle();
    expect(t.reads).toHaveLength(2);
    expect(t.woken).toEqual([]);
    t.reads[1]!.resolve({ services: ["app", "cache"], networks: true });
    await settle();
    expect(t.woken).toEqual(["all"]);
  });

  it("wakes everyone when the set cannot be read", async () => {
    const t = setup();
    t.watch.scope(service("db"));
    t.reads[0]!.reject(new Error("database away"));
    await settle();
    expect(t.woken).toEqual(["all"]);
    // Not settled since: every task matters until a read.
    expect(t.watch.scope(task("db"))).toBe("all");
  });
});
