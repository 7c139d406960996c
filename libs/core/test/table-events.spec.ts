import { describe, expect, it } from "vitest";
import { ingressEventScope, overlayEventScope, tableEventMatters } from "../src";

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
