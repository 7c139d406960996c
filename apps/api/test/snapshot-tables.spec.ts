import type { OverlayRows } from "@flotilla/core";
import { describe, expect, it } from "vitest";
import { TablesBySnapshot } from "../src/networks/snapshot-tables";

const net = { id: "n1", name: "front", vni: 4096, subnet: "10.0.0.0/24", gateway: "10.0.0.1" };
const web = { id: "s-web", name: "web", endpointMode: "vip" as const, networks: [{ networkId: "n1", aliases: [] }], vips: [] };
const nodes = [
  { id: "A", status: "ready" as const, address: "198.19.200.1" },
  { id: "B", status: "ready" as const, address: "198.19.200.2" },
];
const task = (id: string, nodeId: string, ip: string) => ({
  id,
  serviceId: "s-web",
  nodeId,
  state: "RUNNING" as const,
  desiredState: "running" as const,
  addresses: [{ networkId: "n1", ip }],
});
const rows = (tasks: ReturnType<typeof task>[]): OverlayRows => ({ networks: [net], services: [web], tasks, nodes });

describe("overlay tables per rows snapshot", () => {
  it("computes a node's table once per snapshot, and afresh from a new snapshot", () => {
    const tables = new TablesBySnapshot();
    const first = rows([task("t1", "A", "10.0.0.2"), task("t2", "B", "10.0.0.3")]);
    const a = tables.of(first).table("A");
    expect(a.networks[0]!.endpoints.map((e) => e.taskId)).toEqual(["t1", "t2"]);
    // The same snapshot: the same table, version included, for every beat of the node.
    expect(tables.of(first).table("A")).toBe(a);
    expect(tables.of(first).table("B")).not.toBe(a);
    expect(tables.of(first).has("A")).toBe(true);
    expect(tables.of(first).has("C")).toBe(false);

    // A re-read whose task on B moved: A's table and version change.
    const moved = rows([task("t1", "A", "10.0.0.2"), task("t2", "B", "10.0.0.4")]);
    const after = tables.of(moved).table("A");
    expect(after.networks[0]!.endpoints.map((e) => e.ip)).toEqual(["10.0.0.2", "10.0.0.4"]);
    expect(after.version).not.toBe(a.version);
    // A re-read with equal content: a table of its own, with the same version (agents see no change).
    const again = tables.of(rows([task("t1", "A", "10.0.0.2"), task("t2", "B", "10.0.0.3")])).table("A");
    expect(again).not.toBe(a);
    expect(again).toEqual(a);
  });
});
