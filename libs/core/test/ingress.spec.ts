import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { checkPublishedPorts, ingressTable, type MeshBackendTask, type MeshService, type PortConfig } from "../src";

const ingress = (published: number, target = 80): PortConfig => ({ published, target, protocol: "tcp", mode: "ingress" });
const host = (published: number, target = 80, protocol: "tcp" | "udp" = "tcp"): PortConfig => ({
  published,
  target,
  protocol,
  mode: "host",
});

describe("ingressTable", () => {
  const web: MeshService = { id: "s-web", name: "web", ports: [ingress(8080, 80), ingress(8443, 443)] };
  const db: MeshService = { id: "s-db", name: "db", ports: [host(5432, 5432)] };
  const task = (serviceId: string, nodeAddress: string, ...endpoints: [number, number][]): MeshBackendTask => ({
    serviceId,
    nodeAddress,
    endpoints: endpoints.map(([target, hostPort]) => ({ target, protocol: "tcp", hostPort })),
  });

  it("lists every ingress port with the node address and host port of each task, in a stable order", () => {
    const table = ingressTable(
      [web, db],
      [
        task("s-web", "198.18.0.3", [80, 32001], [443, 32002]),
        task("s-web", "198.18.0.2", [80, 32768], [443, 32769]),
        task("s-db", "198.18.0.2", [5432, 5432]),
      ],
    );
    expect(table).toEqual([
      {
        port: 8080,
        protocol: "tcp",
        serviceId: "s-web",
        serviceName: "web",
        backends: [
          { host: "198.18.0.2", port: 32768 },
          { host: "198.18.0.3", port: 32001 },
        ],
      },
      {
        port: 8443,
        protocol: "tcp",
        serviceId: "s-web",
        serviceName: "web",
        backends: [
          { host: "198.18.0.2", port: 32769 },
          { host: "198.18.0.3", port: 32002 },
        ],
      },
    ]);
  });

  it("keeps a port with no running task, so every node answers (and closes) rather than refuse", () => {
    expect(ingressTable([web], [])).toEqual([
      { port: 8080, protocol: "tcp", serviceId: "s-web", serviceName: "web", backends: [] },
      { port: 8443, protocol: "tcp", serviceId: "s-web", serviceName: "web", backends: [] },
    ]);
  });

  it("marks traffic=local ports, and lists the same backends (each node keeps its own)", () => {
    const local: MeshService = { id: "s-loc", name: "loc", ports: [{ ...ingress(9090), traffic: "local" }] };
    expect(ingressTable([local], [task("s-loc", "198.18.0.2", [80, 32768])])).toEqual([
      {
        port: 9090,
        protocol: "tcp",
        serviceId: "s-loc",
        serviceName: "loc",
        traffic: "local",
        backends: [{ host: "198.18.0.2", port: 32768 }],
      },
    ]);
  });

  it("skips a task that has no endpoint for a port (e.g. started before the port was added)", () => {
    const table = ingressTable([web], [task("s-web", "198.18.0.2", [80, 32768])]);
    expect(table.find((p) => p.port === 8443)!.backends).toEqual([]);
    expect(table.find((p) => p.port === 8080)!.backends).toEqual([{ host: "198.18.0.2", port: 32768 }]);
  });

  it("gives the same table whatever order tasks and services come in", () => {
    const arbTask = fc.record({
      serviceId: fc.constantFrom("s-web", "s-db"),
      nodeAddress: fc.constantFrom("198.18.0.2", "198.18.0.3", "198.18.0.4"),
      endpoints: fc.array(
        fc.record({
          target: fc.constantFrom(80, 443),
          protocol: fc.constant("tcp" as const),
          hostPort: fc.integer({ min: 30000, max: 40000 }),
        }),
        { maxLength: 2 },
      ),
    });
    fc.assert(
      fc.property(fc.array(arbTask, { maxLength: 12 }), fc.boolean(), (tasks, flip) => {
        const a = ingressTable([web, db], tasks);
        const b = ingressTable(flip ? [db, web] : [web, db], [...tasks].reverse());
        expect(b).toEqual(a);
        for (const p of a)
          expect(p.backends.length).toBe(
            tasks.filter((t) => t.serviceId === p.serviceId && t.endpoints.some((e) => e.target === (p.port === 8080 ? 80 : 443))).length,
          );
      }),
    );
  });
});

describe("checkPublishedPorts", () => {
  const others = [
    { name: "web", ports: [ingress(8080)] },
    { name: "dns", ports: [host(53, 53, "udp")] },
    { name: "metrics", ports: [host(9100, 9100)] },
  ];

  it.each([
    [
      "an ingress port another service holds",
      [ingress(8080)],
      /port 8080\/tcp is already published by service "web" on every node \(ingress mode\)/,
    ],
    ["a host port on another's ingress port", [host(8080)], /service "web" on every node/],
    ["an ingress port on another's host port", [ingress(9100)], /port 9100\/tcp is already published by service "metrics" in host mode/],
  ])("refuses %s", (_name, ports, message) => {
    expect(() => checkPublishedPorts({ name: "new", ports }, others)).toThrow(message);
    try {
      checkPublishedPorts({ name: "new", ports: [ingress(1), ...ports] }, others);
    } catch (e) {
      expect((e as { details: { field: string } }).details.field).toBe("ports[1].published");
    }
  });

  it.each([
    ["two host ports (the scheduler keeps their tasks apart)", [host(9100)]],
    ["the same number over another protocol", [host(8080, 80, "udp")]],
    ["a free port", [ingress(8081)]],
    ["the service's own ports, on update", [ingress(8080)], "web"],
  ])("allows %s", (_name, ports, name = "new") => {
    expect(() => checkPublishedPorts({ name, ports }, others)).not.toThrow();
  });
});
