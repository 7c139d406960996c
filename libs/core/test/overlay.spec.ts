import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  chooseSubnet,
  cidrsOverlap,
  nextFreeAddress,
  nextVni,
  nodeNetworkTable,
  nodeNetworkTables,
  normalizeServiceSpec,
  parseCidr,
  validateNetworkName,
  VNI_MIN,
  type OverlayNodeInfo,
  type OverlayServiceInfo,
  type OverlayTaskInfo,
  type TaskState,
} from "../src";

describe("overlay IPAM", () => {
  it("takes the first /24 of 10.0.0.0/8 that no network overlaps, skipping whole networks in the way", () => {
    expect(chooseSubnet({}, [])).toEqual({ subnet: "10.0.0.0/24", gateway: "10.0.0.1" });
    expect(chooseSubnet({}, [{ name: "a", subnet: "10.0.0.0/24" }])).toEqual({ subnet: "10.0.1.0/24", gateway: "10.0.1.1" });
    expect(chooseSubnet({}, [{ name: "big", subnet: "10.0.0.0/16" }]).subnet).toBe("10.1.0.0/24");
    expect(chooseSubnet({}, [{ name: "a", subnet: "10.0.1.0/24" }]).subnet).toBe("10.0.0.0/24");
  });

  it("keeps a given subnet and gateway, and refuses overlaps, bad CIDRs and gateways outside, naming the field", () => {
    expect(chooseSubnet({ subnet: "198.19.200.0/24", gateway: "198.19.200.254" }, [])).toEqual({
      subnet: "198.19.200.0/24",
      gateway: "198.19.200.254",
    });
    expect(() => chooseSubnet({ subnet: "198.19.200.0/25" }, [{ name: "web", subnet: "198.19.200.0/24" }])).toThrow(
      expect.objectContaining({ kind: "conflict", details: expect.objectContaining({ field: "subnet", network: "web" }) }),
    );
    for (const subnet of ["198.19.200.1/24", "10.0.0.0", "300.0.0.0/8", "10.0.0.0/30", "10.0.0.0/7"])
      expect(() => chooseSubnet({ subnet }, [])).toThrow(
        expect.objectContaining({ kind: "invalid", details: expect.objectContaining({ field: "subnet" }) }),
      );
    for (const gateway of ["198.19.201.1", "198.19.200.0", "198.19.200.255", "x"])
      expect(() => chooseSubnet({ subnet: "198.19.200.0/24", gateway }, [])).toThrow(
        expect.objectContaining({ kind: "invalid", details: expect.objectContaining({ field: "gateway" }) }),
      );
  });

  it("never chooses a subnet overlapping an existing one (property)", () => {
    const slash = fc.tuple(fc.integer({ min: 0, max: 255 }), fc.integer({ min: 0, max: 3 }), fc.constantFrom(16, 20, 24, 28));
    fc.assert(
      fc.property(fc.array(slash, { maxLength: 12 }), (raw) => {
        const existing: { name: string; subnet: string }[] = [];
        for (const [b, c, p] of raw) {
          const s =
            p === 16 ? `10.${b}.0.0/16` : p === 20 ? `10.${b}.${c * 16}.0/20` : p === 24 ? `10.${b}.${c}.0/24` : `10.${b}.${c}.16/28`;
          if (existing.every((e) => !cidrsOverlap(parseCidr(e.subnet)!, parseCidr(s)!))) existing.push({ name: s, subnet: s });
        }
        const { subnet } = chooseSubnet({}, existing);
        expect(existing.some((e) => cidrsOverlap(parseCidr(e.subnet)!, parseCidr(subnet)!))).toBe(false);
      }),
    );
  });

  it("gives the lowest free VNI and host address, never the gateway, network or broadcast address", () => {
    expect(nextVni([])).toBe(VNI_MIN);
    expect(nextVni([4096, 4097, 4099])).toBe(4098);
    expect(nextFreeAddress("198.19.200.0/24", "198.19.200.1", new Set())).toBe("198.19.200.2");
    expect(nextFreeAddress("198.19.200.0/24", "198.19.200.1", new Set(["198.19.200.2"]))).toBe("198.19.200.3");
    // /29: .1 … .6 are hosts; .1 is the gateway.
    const used = new Set(["198.19.200.2", "198.19.200.3", "198.19.200.4", "198.19.200.5"]);
    expect(nextFreeAddress("198.19.200.0/29", "198.19.200.1", used)).toBe("198.19.200.6");
    expect(nextFreeAddress("198.19.200.0/29", "198.19.200.1", new Set([...used, "198.19.200.6"]))).toBeUndefined();
  });

  it("gives addresses serially after the last one given, wrapping round, so a freed one waits its turn", () => {
    // .3 was just freed (its container may still hold it): the next after .5 is .6, not .3.
    expect(nextFreeAddress("198.19.200.0/24", "198.19.200.1", new Set(["198.19.200.2", "198.19.200.4"]), "198.19.200.5")).toBe(
      "198.19.200.6",
    );
    // At the end of the subnet it wraps to the first free host address, skipping the gateway.
    expect(nextFreeAddress("198.19.200.0/29", "198.19.200.1", new Set(["198.19.200.2"]), "198.19.200.6")).toBe("198.19.200.3");
    expect(nextFreeAddress("198.19.200.0/29", "198.19.200.1", new Set(), "198.19.200.5")).toBe("198.19.200.6");
    // A last address outside the subnet (a changed network) starts from the beginning.
    expect(nextFreeAddress("198.19.200.0/29", "198.19.200.1", new Set(), "10.0.0.9")).toBe("198.19.200.2");
    const full = new Set(["198.19.200.2", "198.19.200.3", "198.19.200.4", "198.19.200.5", "198.19.200.6"]);
    expect(nextFreeAddress("198.19.200.0/29", "198.19.200.1", full, "198.19.200.3")).toBeUndefined();
  });

  it("never gives an address in use, the gateway, or one outside the subnet's hosts (property)", () => {
    fc.assert(
      fc.property(fc.uniqueArray(fc.integer({ min: 0, max: 255 }), { maxLength: 250 }), fc.integer({ min: 1, max: 254 }), (used, gw) => {
        const taken = new Set(used.map((b) => `198.19.200.${b}`));
        const ip = nextFreeAddress("198.19.200.0/24", `198.19.200.${gw}`, taken);
        if (ip === undefined) {
          // Full: every host address but the gateway is taken.
          for (let b = 1; b < 255; b++) if (b !== gw) expect(taken.has(`198.19.200.${b}`)).toBe(true);
          return;
        }
        const last = Number(ip.split(".")[3]);
        expect(taken.has(ip)).toBe(false);
        expect(last).not.toBe(gw);
        expect(last).toBeGreaterThanOrEqual(1);
        expect(last).toBeLessThanOrEqual(254);
      }),
    );
  });

  it("checks network names and service attachments, naming the field", () => {
    expect(validateNetworkName("app_net-1.x")).toBe("app_net-1.x");
    expect(() => validateNetworkName("-bad")).toThrow(expect.objectContaining({ details: expect.objectContaining({ field: "name" }) }));
    const spec = normalizeServiceSpec({ name: "web", image: "busybox", networks: [{ target: "front", aliases: ["www"] }] });
    expect(spec.networks).toEqual([{ target: "front", aliases: ["www"] }]);
    expect(spec.endpointMode).toBe("vip");
    expect(() => normalizeServiceSpec({ name: "web", image: "busybox", networks: [{ target: "a" }, { target: "a" }] })).toThrow(
      expect.objectContaining({ details: expect.objectContaining({ field: "networks[1].target" }) }),
    );
    expect(() => normalizeServiceSpec({ name: "web", image: "busybox", networks: [{ target: "a", aliases: ["bad name"] }] })).toThrow(
      expect.objectContaining({ details: expect.objectContaining({ field: "networks[0].aliases[0]" }) }),
    );
    expect(() =>
      normalizeServiceSpec({ name: "web", image: "busybox", endpointMode: "dnsrr", ports: [{ published: 80, target: 80 }] }),
    ).toThrow(expect.objectContaining({ details: expect.objectContaining({ field: "ports[0].mode" }) }));
  });
});

describe("nodeNetworkTable", () => {
  const net = { id: "n1", name: "front", vni: 4096, subnet: "10.0.0.0/24", gateway: "10.0.0.1" };
  const other = { id: "n2", name: "back", vni: 4097, subnet: "10.0.1.0/24", gateway: "10.0.1.1" };
  const nodes: OverlayNodeInfo[] = [
    { id: "A", status: "ready", address: "198.19.200.1" },
    { id: "B", status: "ready", address: "198.19.200.2" },
    { id: "C", status: "down", address: "198.19.200.3" },
    { id: "D", status: "ready", address: "198.19.200.4" },
  ];
  const web: OverlayServiceInfo = {
    id: "s-web",
    name: "web",
    endpointMode: "vip",
    networks: [{ networkId: "n1", aliases: ["www", "site"] }],
    vips: [{ networkId: "n1", ip: "10.0.0.2" }],
  };
  const db: OverlayServiceInfo = { id: "s-db", name: "db", endpointMode: "dnsrr", networks: [{ networkId: "n2", aliases: [] }], vips: [] };
  const task = (id: string, serviceId: string, nodeId: string, state: TaskState, ip: string, networkId = "n1"): OverlayTaskInfo => ({
    id,
    serviceId,
    nodeId,
    state,
    desiredState: "running",
    addresses: [{ networkId, ip }],
  });

  it("lists the node's networks with every endpoint, the other live nodes as peers, and RUNNING tasks as backends", () => {
    const tasks = [
      task("t1", "s-web", "A", "RUNNING", "10.0.0.3"),
      task("t2", "s-web", "B", "STARTING", "10.0.0.4"),
      task("t3", "s-web", "C", "RUNNING", "10.0.0.5"),
      task("t4", "s-web", "B", "RUNNING", "10.0.0.10"),
      task("t5", "s-web", "B", "FAILED", "10.0.0.6"),
      task("t6", "s-db", "D", "RUNNING", "10.0.1.2", "n2"),
    ];
    const table = nodeNetworkTable("A", { networks: [net, other], services: [web, db], tasks, nodes });
    expect(table).toEqual({
      nodeAddress: "198.19.200.1",
      networks: [
        {
          ...net,
          peers: ["198.19.200.2"],
          endpoints: [
            { taskId: "t1", serviceId: "s-web", ip: "10.0.0.3", mac: "02:42:0a:00:00:03", nodeAddress: "198.19.200.1" },
            { taskId: "t2", serviceId: "s-web", ip: "10.0.0.4", mac: "02:42:0a:00:00:04", nodeAddress: "198.19.200.2" },
            { taskId: "t4", serviceId: "s-web", ip: "10.0.0.10", mac: "02:42:0a:00:00:0a", nodeAddress: "198.19.200.2" },
          ],
          services: [
            {
              id: "s-web",
              name: "web",
              endpointMode: "vip",
              vip: "10.0.0.2",
              aliases: ["site", "www"],
              backends: ["10.0.0.3", "10.0.0.10"],
            },
          ],
        },
      ],
    });
    // D sees only "back", where it runs a task; dnsrr has no VIP.
    expect(nodeNetworkTable("D", { networks: [net, other], services: [web, db], tasks, nodes }).networks).toEqual([
      {
        ...other,
        peers: [],
        endpoints: [{ taskId: "t6", serviceId: "s-db", ip: "10.0.1.2", mac: "02:42:0a:00:01:02", nodeAddress: "198.19.200.4" }],
        services: [{ id: "s-db", name: "db", endpointMode: "dnsrr", aliases: [], backends: ["10.0.1.2"] }],
      },
    ]);
  });

  it("answers every node from rows indexed once, as each node's own table", () => {
    const tasks = [
      task("t1", "s-web", "A", "RUNNING", "10.0.0.3"),
      task("t2", "s-web", "B", "STARTING", "10.0.0.4"),
      task("t6", "s-db", "D", "RUNNING", "10.0.1.2", "n2"),
    ];
    const rows = { networks: [net, other], services: [web, db], tasks, nodes };
    const tables = nodeNetworkTables(rows);
    for (const id of ["A", "B", "C", "D", "gone"]) expect(tables.table(id)).toEqual(nodeNetworkTable(id, rows));
    expect(tables.table("B").networks.map((v) => [v.name, v.peers])).toEqual([["front", ["198.19.200.1"]]]);
    expect(["A", "C", "gone"].map((id) => tables.has(id))).toEqual([true, true, false]);
  });

  it("answers a node from its own row read later as from rows that held that row all along", () => {
    const tasks = [task("t1", "s-web", "A", "RUNNING", "10.0.0.3"), task("t2", "s-web", "B", "STARTING", "10.0.0.4")];
    const before = { networks: [net, other], services: [web, db], tasks, nodes: nodes.filter((n) => n.id !== "E") };
    const joined: OverlayNodeInfo = { id: "E", status: "ready", address: "198.19.200.5" };
    const after = { ...before, nodes: [...before.nodes, joined] };
    const tables = nodeNetworkTables(before);
    expect(tables.table("E").unavailable).toBeDefined();
    expect(tables.table("E", joined)).toEqual(nodeNetworkTable("E", after));
    expect(tables.table("E", joined)).toMatchObject({ nodeAddress: "198.19.200.5", networks: [] });
    // A node whose own row changed (its address): its networks keep the rows' tasks.
    const moved: OverlayNodeInfo = { id: "B", status: "ready", address: "198.19.201.2" };
    const withMoved = { ...before, nodes: before.nodes.map((n) => (n.id === "B" ? moved : n)) };
    expect(tables.table("B", moved)).toEqual(nodeNetworkTable("B", withMoved));
    expect(tables.table("B", moved).nodeAddress).toBe("198.19.201.2");
  });

  it("includes a network for a task only assigned to the node, and drops a task being stopped from the backends", () => {
    const tasks = [
      task("t1", "s-web", "A", "ASSIGNED", "10.0.0.3"),
      { ...task("t2", "s-web", "B", "RUNNING", "10.0.0.4"), desiredState: "shutdown" as const },
    ];
    const [view] = nodeNetworkTable("A", { networks: [net], services: [web], tasks, nodes }).networks;
    expect(view.endpoints.map((e) => e.taskId)).toEqual(["t1", "t2"]);
    expect(view.services[0].backends).toEqual([]);
    expect(nodeNetworkTable("D", { networks: [net], services: [web], tasks, nodes }).networks).toEqual([]);
  });

  it("names the node's own address while it takes part in no network", () => {
    expect(nodeNetworkTable("A", { networks: [], services: [], tasks: [], nodes })).toEqual({ nodeAddress: "198.19.200.1", networks: [] });
    expect(nodeNetworkTable("C", { networks: [net], services: [web], tasks: [], nodes })).toEqual({
      nodeAddress: "198.19.200.3",
      networks: [],
    });
  });

  it("gives a node without an IPv4 address, or one not listed, no address and no networks, saying why", () => {
    const more: OverlayNodeInfo[] = [
      ...nodes,
      { id: "U", status: "ready", engineUrl: "unix:///var/run/docker.sock" },
      { id: "N", status: "ready", address: "node-n.example", engineUrl: "https://node-n.example:2376" },
      { id: "E", status: "ready", address: "" },
    ];
    const tasks = [
      task("t1", "s-web", "A", "RUNNING", "10.0.0.3"),
      task("t2", "s-web", "U", "RUNNING", "10.0.0.4"),
      task("t3", "s-db", "U", "STARTING", "10.0.1.3", "n2"),
      task("t4", "s-web", "N", "RUNNING", "10.0.0.5"),
    ];
    const rows = { networks: [net, other], services: [web, db], tasks, nodes: more };
    expect(nodeNetworkTable("U", rows)).toEqual({
      networks: [],
      unavailable:
        "its engine URL unix:///var/run/docker.sock gives no underlay address (only an http(s)://<IPv4>:<port> engine URL does); its tasks on back, front cannot be attached",
    });
    expect(nodeNetworkTable("N", rows)).toEqual({
      networks: [],
      unavailable:
        'its address "node-n.example" (engine URL https://node-n.example:2376) is not an IPv4 address, and VXLAN tunnels need one; its tasks on front cannot be attached',
    });
    expect(nodeNetworkTable("E", rows)).toEqual({
      networks: [],
      unavailable: expect.stringMatching(/^its address "" .* is not an IPv4 address/),
    });
    expect(nodeNetworkTable("gone", rows)).toEqual({ networks: [], unavailable: "node gone is not registered" });
    // The others never list an endpoint or a peer at such a node.
    const [front] = nodeNetworkTable("A", rows).networks;
    expect(front.endpoints.map((e) => [e.taskId, e.nodeAddress])).toEqual([["t1", "198.19.200.1"]]);
    expect(front.peers).toEqual([]);
  });

  it("gives equal tables for the same rows in any order, and never lists a peer without a task there (property)", () => {
    const states: TaskState[] = ["PENDING", "ASSIGNED", "STARTING", "RUNNING", "SHUTDOWN", "FAILED"];
    const all: OverlayNodeInfo[] = [
      ...nodes,
      { id: "U", status: "ready", engineUrl: "unix:///var/run/docker.sock" },
      { id: "N", status: "ready", address: "node-n.example" },
    ];
    const arbTask = fc.record({
      node: fc.constantFrom("A", "B", "C", "D", "U", "N"),
      state: fc.constantFrom(...states),
      svc: fc.constantFrom("s-web", "s-db"),
      host: fc.integer({ min: 2, max: 250 }),
    });
    fc.assert(
      fc.property(fc.uniqueArray(arbTask, { selector: (t) => `${t.svc}${t.host}`, maxLength: 20 }), fc.integer(), (raw, seed) => {
        const tasks = raw.map((t, i) =>
          t.svc === "s-web"
            ? task(`t${i}`, t.svc, t.node, t.state, `10.0.0.${t.host}`)
            : task(`t${i}`, t.svc, t.node, t.state, `10.0.1.${t.host}`, "n2"),
        );
        const shuffled = [...tasks].sort(() => ((seed = (seed * 1103515245 + 12345) | 0) & 1 ? 1 : -1));
        for (const node of ["A", "B", "C", "D", "U", "N"]) {
          const a = nodeNetworkTable(node, { networks: [net, other], services: [web, db], tasks, nodes: all });
          const b = nodeNetworkTable(node, { networks: [other, net], services: [db, web], tasks: shuffled, nodes: [...all].reverse() });
          expect(JSON.stringify(b)).toBe(JSON.stringify(a));
          // Every address a table names is an IPv4 address; a table without its own has no networks.
          if (a.nodeAddress === undefined) expect(a).toEqual({ networks: [], unavailable: expect.any(String) });
          else expect(a.nodeAddress).toMatch(/^\d+\.\d+\.\d+\.\d+$/);
          for (const v of a.networks)
            for (const x of [...v.peers, ...v.endpoints.map((e) => e.nodeAddress)]) expect(x).toMatch(/^198\.19\.200\.\d+$/);
          for (const v of a.networks) {
            expect(
              tasks.some(
                (t) => t.nodeId === node && t.addresses[0].networkId === v.id && ["ASSIGNED", "STARTING", "RUNNING"].includes(t.state),
              ),
            ).toBe(true);
            for (const p of v.peers) {
              const peer = all.find((n) => n.address === p)!;
              expect(peer.status).toBe("ready");
              expect(
                tasks.some(
                  (t) => t.nodeId === peer.id && t.addresses[0].networkId === v.id && !["PENDING", "SHUTDOWN", "FAILED"].includes(t.state),
                ),
              ).toBe(true);
            }
            for (const s of v.services)
              for (const ip of s.backends)
                expect(tasks.find((t) => t.addresses[0].ip === ip && t.serviceId === s.id)?.state).toBe("RUNNING");
          }
        }
      }),
    );
  });
});
