import { describe, expect, it } from "vitest";
import { heldEventsScope, ingressEventScope, overlayEventScope, tableEventMatters } from "../src";

const settled = (...ids: string[]) => ({ ids: new Set(ids), settled: true });
const unsettled = (...ids: string[]) => ({ ids: new Set(ids), settled: false });
const task = (serviceId?: string) => ({ kind: "task", subjectId: "t1", data: serviceId ? { serviceId } : {} });
const node = { kind: "node", subjectId: "n1", data: {} };

describe("table event scopes", () => {
  it("counts a task's event only for the table's services, unless a service changed since the last read", () => {
    expect(tableEventMatters(task("web"), settled("web"))).toBe(true);
    expect(tableEventMatters(task("db"), settled("web"))).toBe(false);
    expect(tableEventMatters(task("db"), unsettled("web"))).toBe(true);
    expect(tableEventMatters(task(), settled("web"))).toBe(true);
    for (const kind of ["service", "node", "network"]) expect(tableEventMatters({ kind }, settled())).toBe(true);
  });

  it("ingress: a node's event matters only while some service has ingress ports (or may have)", () => {
    expect(ingressEventScope(node, settled())).toBe("none");
    expect(ingressEventScope(node, settled("web"))).toBe("all");
    expect(ingressEventScope(node, unsettled())).toBe("all");
    expect(ingressEventScope(task("db"), settled("web"))).toBe("none");
    expect(ingressEventScope({ kind: "service" }, settled())).toBe("all");
  });

  it("overlay: without networks a node's event is its own table's; with them, everyone's", () => {
    expect(overlayEventScope(node, settled(), false)).toEqual({ nodes: ["n1"] });
    expect(overlayEventScope(node, settled(), true)).toBe("all");
    expect(overlayEventScope(node, unsettled(), false)).toBe("all");
    expect(overlayEventScope({ kind: "node", subjectId: null }, settled(), false)).toBe("all");
    expect(overlayEventScope(task("db"), settled("app"), true)).toBe("none");
    expect(overlayEventScope(task("app"), settled("app"), true)).toBe("all");
  });
});

describe("events held while the watched set is read", () => {
  const watched = (networks: boolean, ...ids: string[]) => ({ ids: new Set(ids), networks });
  const service = (id: string | null) => ({ kind: "service", subjectId: id, data: {} });

  it("wakes no one for a service that is in neither set, nor for the other services' tasks", () => {
    const held = [service("db"), task("db"), task("cache")];
    expect(heldEventsScope(held, watched(true, "web"), watched(true, "web"), overlayEventScope)).toBe("none");
    expect(heldEventsScope(held, watched(false), watched(false), (e, s) => ingressEventScope(e, s))).toBe("none");
  });

  it("wakes everyone for a service given ports or networks, one that lost them, one of the set, a network, or a task of the set", () => {
    const scope = (held: object[], before: string[], after: string[]) =>
      heldEventsScope(held as never, watched(true, ...before), watched(true, ...after), overlayEventScope);
    expect(scope([service("db")], [], ["db"])).toBe("all");
    expect(scope([service("db")], ["db"], [])).toBe("all");
    expect(scope([service("web")], ["web"], ["web"])).toBe("all");
    expect(scope([service(null)], [], [])).toBe("all");
    expect(scope([{ kind: "network", subjectId: "n" }], [], [])).toBe("all");
    expect(scope([service("db"), task("web")], ["web"], ["web"])).toBe("all");
  });

  it("keeps a node's event to its own table while no network exists, across the held events", () => {
    const other = { kind: "node", subjectId: "n2", data: {} };
    expect(heldEventsScope([service("db"), node, other], watched(false), watched(false), overlayEventScope)).toEqual({
      nodes: ["n1", "n2"],
    });
    expect(heldEventsScope([service("db"), node], watched(false), watched(true), overlayEventScope)).toBe("all");
  });
});
