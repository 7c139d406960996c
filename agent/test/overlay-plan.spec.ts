// The pure parts of overlay networks: the table check, device names, VXLAN forwarding entries and
// their diff (property-tested), neighbour entries, the VIP rules inside a container, the DNS
// answers (also through the real DNS server's encoder) and the Docker shape of an overlay network.
import { InvalidError, overlayMac, type OverlayNetworkView } from "@flotilla/core";
import packet from "dns-packet";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { EmbeddedDns } from "../src/network/dns-server";
import { toOverlayDockerNetwork } from "../src/network/network-shapes";
import {
  checkNetworkTable,
  containerRulesScript,
  desiredFdb,
  diffFdb,
  fdbBatch,
  missingJumps,
  neighbourBatch,
  overlayAnswer,
  overlayLinkNames,
  overlayMtu,
  overlayVethName,
  vipPlans,
  CONTAINER_JUMPS,
  type FdbEntry,
} from "../src/overlay";

const view = (over: Partial<OverlayNetworkView> = {}): OverlayNetworkView => ({
  id: "net1",
  name: "front",
  vni: 4096,
  subnet: "198.19.206.0/24",
  gateway: "198.19.206.1",
  peers: ["198.19.205.2", "198.19.205.3"],
  endpoints: [
    { taskId: "t1", serviceId: "s1", ip: "198.19.206.11", mac: overlayMac("198.19.206.11"), nodeAddress: "198.19.205.1" },
    { taskId: "t2", serviceId: "s1", ip: "198.19.206.12", mac: overlayMac("198.19.206.12"), nodeAddress: "198.19.205.2" },
    { taskId: "t3", serviceId: "s2", ip: "198.19.206.13", mac: overlayMac("198.19.206.13"), nodeAddress: "198.19.205.3" },
  ],
  services: [
    { id: "s1", name: "web", endpointMode: "vip", vip: "198.19.206.100", aliases: ["www"], backends: ["198.19.206.11", "198.19.206.12"] },
    { id: "s2", name: "db", endpointMode: "dnsrr", aliases: [], backends: ["198.19.206.13"] },
  ],
  ...over,
});

describe("the network table check", () => {
  it("refuses what is no table at all, naming the field", () => {
    expect(() => checkNetworkTable(null)).toThrow(InvalidError);
    expect(() => checkNetworkTable({ version: "v", networks: {} })).toThrow(/version and a networks list/);
    expect(() => checkNetworkTable({ version: "v", nodeAddress: "nope", networks: [] })).toThrow(/nodeAddress "nope"/);
    expect(() => checkNetworkTable({ version: "v", nodeAddress: "", networks: [] })).toThrow(/nodeAddress "" is not an IPv4 address/);
    // No address is allowed only with no networks: there is nothing to build a tunnel for.
    expect(() => checkNetworkTable({ version: "v", networks: [view()], unavailable: "x" })).toThrow(/nodeAddress undefined/);
  });

  it("takes a table without address and networks as the control plane's word that the node takes part in none", () => {
    const why = "its engine URL unix:///var/run/docker.sock gives no underlay address";
    expect(checkNetworkTable({ version: "v9", networks: [], unavailable: why })).toEqual({
      table: { version: "v9", networks: [], unavailable: why },
      errors: [],
    });
    expect(checkNetworkTable({ version: "v9", networks: [] }).table.unavailable).toBe("the control plane gave this node no address");
  });

  it("keeps good networks and leaves out bad ones and bad entries, each named", () => {
    const good = view();
    const { table, errors } = checkNetworkTable({
      version: "v1",
      nodeAddress: "198.19.205.1",
      networks: [
        good,
        { ...view(), id: "net2", name: "bad-vni", vni: 0 },
        { ...view(), id: "net3", name: "bad-subnet", subnet: "198.19.206.1/24" },
        { ...view(), id: "net4", name: "same-vni" },
        {
          ...view(),
          id: "net5",
          name: "partly",
          vni: 5000,
          endpoints: [...view().endpoints, { taskId: "tx", ip: "10.0.0.1", mac: "x", nodeAddress: "198.19.205.2" }],
          services: [
            ...view().services,
            { id: "s3", name: "novip", endpointMode: "vip", aliases: [], backends: [] },
            { id: "s4", name: "off", endpointMode: "dnsrr", aliases: [], backends: ["198.19.206.14", "10.1.1.1"] },
          ],
        },
      ],
    });
    expect(table.networks.map((n) => n.name)).toEqual(["front", "partly"]);
    expect(table.networks[0]).toEqual(good);
    expect(table.networks[1]!.endpoints).toHaveLength(3);
    expect(table.networks[1]!.services.map((s) => [s.name, s.backends])).toEqual([
      ["web", ["198.19.206.11", "198.19.206.12"]],
      ["db", ["198.19.206.13"]],
      ["off", ["198.19.206.14"]],
    ]);
    expect(errors).toEqual([
      "network bad-vni left out: vni 0 is not in 1..16777215",
      'network bad-subnet left out: subnet "198.19.206.1/24" is not an IPv4 CIDR',
      "network same-vni left out: its id, name or vni 4096 is already used by another network of the table",
      expect.stringMatching(/^network partly: endpoint .*left out: needs taskId, ip in 198\.19\.206\.0\/24/),
      "network partly: service novip left out: endpointMode vip needs a vip",
      'network partly: service off: backend "10.1.1.1" left out: not an address of 198.19.206.0/24',
    ]);
  });
});

describe("names, forwarding entries and neighbours", () => {
  it("names fit IFNAMSIZ and differ per scope (agents sharing a kernel) and per network", () => {
    const a = overlayLinkNames("flt0", "net1");
    expect(a.bridge).toMatch(/^ovb[0-9a-f]{8}$/);
    expect(a.vxlan).toBe(`ovx${a.bridge.slice(3)}`);
    expect(overlayLinkNames("flt1", "net1").bridge).not.toBe(a.bridge);
    expect(overlayLinkNames("flt0", "net2").bridge).not.toBe(a.bridge);
    expect(overlayVethName("flt0", "net1", "c".repeat(64)).length).toBeLessThanOrEqual(15);
    expect(overlayMtu(1500)).toBe(1450);
  });

  it("floods to every peer and sends each remote MAC to its node; local endpoints and this node need none", () => {
    expect(desiredFdb(view(), "198.19.205.1")).toEqual([
      { mac: "00:00:00:00:00:00", dst: "198.19.205.2" },
      { mac: "00:00:00:00:00:00", dst: "198.19.205.3" },
      { mac: overlayMac("198.19.206.12"), dst: "198.19.205.2" },
      { mac: overlayMac("198.19.206.13"), dst: "198.19.205.3" },
    ]);
    // A peer list that names this node too does not make it flood to itself.
    expect(desiredFdb(view({ peers: ["198.19.205.1", "198.19.205.2"] }), "198.19.205.1").filter((e) => e.dst === "198.19.205.1")).toEqual(
      [],
    );
  });

  it("the diff takes any current set of entries to exactly the wanted one (property)", () => {
    const entry = fc.record({
      mac: fc.constantFrom("00:00:00:00:00:00", "02:42:c6:13:ce:0b", "02:42:c6:13:ce:0c"),
      dst: fc.constantFrom("198.19.205.1", "198.19.205.2", "198.19.205.3"),
    });
    fc.assert(
      fc.property(
        fc.uniqueArray(entry, { selector: (e) => `${e.mac} ${e.dst}` }),
        fc.uniqueArray(entry, { selector: (e) => `${e.mac} ${e.dst}` }),
        (cur, want) => {
          const { del, add } = diffFdb(cur, want);
          const k = (e: FdbEntry) => `${e.mac} ${e.dst}`;
          const after = new Set(cur.map(k));
          for (const e of del) after.delete(k(e));
          for (const e of add) after.add(k(e));
          expect([...after].sort()).toEqual(want.map(k).sort());
          // Nothing is touched that is already right.
          expect(del.some((e) => want.some((w) => k(w) === k(e)))).toBe(false);
          expect(add.some((e) => cur.some((c) => k(c) === k(e)))).toBe(false);
        },
      ),
    );
  });

  it("writes bridge -batch lines, deletions first", () => {
    expect(
      fdbBatch("ovx1", {
        del: [{ mac: "02:42:c6:13:ce:0b", dst: "198.19.205.2" }],
        add: [{ mac: "02:42:c6:13:ce:0b", dst: "198.19.205.3" }],
      }),
    ).toEqual([
      "fdb del 02:42:c6:13:ce:0b dev ovx1 dst 198.19.205.2 self",
      "fdb append 02:42:c6:13:ce:0b dev ovx1 dst 198.19.205.3 self permanent",
    ]);
  });

  it("gives a container a permanent neighbour entry for every other endpoint, replacing the old ones", () => {
    expect(neighbourBatch(view(), "eth1", "198.19.206.11")).toEqual([
      "neigh flush dev eth1 nud permanent",
      `neigh replace 198.19.206.12 lladdr ${overlayMac("198.19.206.12")} dev eth1 nud permanent`,
      `neigh replace 198.19.206.13 lladdr ${overlayMac("198.19.206.13")} dev eth1 nud permanent`,
    ]);
  });
});

describe("VIP rules inside a container", () => {
  it("DNATs each VIP round robin over its backends, REJECTs a VIP without any, redirects DNS, adds only missing jumps", () => {
    const vips = vipPlans([
      view(),
      view({ id: "n2", services: [{ id: "e", name: "empty", endpointMode: "vip", vip: "198.19.206.200", aliases: [], backends: [] }] }),
    ]);
    expect(vips.map((v) => [v.vip, v.backends.length])).toEqual([
      ["198.19.206.100", 2],
      ["198.19.206.200", 0],
    ]);
    const script = containerRulesScript(vips, { server: "172.31.0.1", port: 53, containerIp: "172.31.0.5" }, ["-A OUTPUT -j FLT-OVL"]);
    const lines = script.split("\n");
    expect(lines).toEqual(
      expect.arrayContaining([
        "-A FLT-OVL -d 198.19.206.100/32 -m statistic --mode nth --every 2 --packet 0 -j DNAT --to-destination 198.19.206.11",
        "-A FLT-OVL -d 198.19.206.100/32 -j DNAT --to-destination 198.19.206.12",
        "-A FLT-OVL -d 127.0.0.11/32 -p udp -m udp --dport 53 -j DNAT --to-destination 172.31.0.1:53",
        "-A FLT-OVL-POST -s 127.0.0.0/8 -d 172.31.0.1/32 -p udp -m udp --dport 53 -j SNAT --to-source 172.31.0.5",
        "-A FLT-OVL-REJ -d 198.19.206.200/32 -p tcp -j REJECT --reject-with tcp-reset",
        "-A OUTPUT -j FLT-OVL",
      ]),
    );
    expect(lines.filter((l) => l.includes("DNAT --to-destination 198.19.206.1") && l.includes(".200/"))).toEqual([]);
    expect(lines).not.toContain("-A POSTROUTING -j FLT-OVL-POST");
    // Chains are declared (and so flushed) in the same transaction that refills them.
    expect(lines.indexOf(":FLT-OVL - [0:0]")).toBeLessThan(lines.findIndex((l) => l.startsWith("-A FLT-OVL ")));
  });

  it("spreads n backends as every n, n-1, … 2 and a last catch-all (each gets 1/n)", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 12 }), (n) => {
        const backends = Array.from({ length: n }, (_, i) => `198.19.206.${10 + i}`);
        const dnat = containerRulesScript([{ vip: "198.19.206.100", service: "s", backends }], undefined, [])
          .split("\n")
          .filter((l) => l.includes("DNAT"));
        expect(dnat).toHaveLength(n);
        dnat.forEach((l, i) => expect(l.includes(`--every ${n - i} `)).toBe(i < n - 1));
        // Simulated: every rule's nth counter sees what the rules before it let through.
        const counters = new Array<number>(n).fill(0);
        const got = new Array<number>(n).fill(0);
        for (let conn = 0; conn < n * 6; conn++) {
          for (let i = 0; i < n; i++) {
            if (i === n - 1) {
              got[i]!++;
              break;
            }
            const every = n - i;
            const hit = counters[i]! % every === 0;
            counters[i]!++;
            if (hit) {
              got[i]!++;
              break;
            }
          }
        }
        expect(got).toEqual(new Array<number>(n).fill(6));
      }),
    );
  });

  it("finds the jumps an iptables-save lacks", () => {
    const all = [...CONTAINER_JUMPS.nat, ...CONTAINER_JUMPS.filter];
    expect(missingJumps("")).toEqual(all);
    expect(missingJumps(all.join("\n"))).toEqual([]);
  });
});

describe("overlay DNS answers", () => {
  const nets = [
    view(),
    view({
      id: "net2",
      name: "back",
      vni: 4097,
      services: [{ id: "s9", name: "secret", endpointMode: "vip", vip: "198.19.206.150", aliases: [], backends: ["198.19.206.13"] }],
    }),
  ];
  const on1 = new Set(["net1"]);

  it("answers the VIP for a vip service and its aliases, every backend for dnsrr and tasks.NAME", () => {
    expect(overlayAnswer(nets, on1, "web")).toEqual(["198.19.206.100"]);
    expect(overlayAnswer(nets, on1, "WWW.")).toEqual(["198.19.206.100"]);
    expect(overlayAnswer(nets, on1, "tasks.web")).toEqual(["198.19.206.11", "198.19.206.12"]);
    expect(overlayAnswer(nets, on1, "db")).toEqual(["198.19.206.13"]);
    expect(overlayAnswer(nets, on1, "tasks.db")).toEqual(["198.19.206.13"]);
  });

  it("is network-scoped: a service only on a network the container is not attached to is not an overlay name", () => {
    expect(overlayAnswer(nets, on1, "secret")).toBeUndefined();
    expect(overlayAnswer(nets, new Set(["net2"]), "secret")).toEqual(["198.19.206.150"]);
    expect(overlayAnswer(nets, on1, "example.com")).toBeUndefined();
    // A dnsrr service with no backend is a name without addresses (NOERROR, no data), not forwarded.
    expect(
      overlayAnswer([view({ services: [{ id: "s", name: "none", endpointMode: "dnsrr", aliases: [], backends: [] }] })], on1, "none"),
    ).toEqual([]);
  });

  it("goes through the embedded DNS server's encoder", async () => {
    const dns = new EmbeddedDns({
      port: 0,
      upstreams: () => [],
      decide: (_n, _c, q) => {
        const a = overlayAnswer(nets, on1, q);
        return a ? { kind: "answer", addresses: a } : { kind: "nxdomain" };
      },
    });
    const ask = async (name: string) =>
      packet.decode(
        (await dns.answer("overlay", "172.31.0.5", packet.encode({ type: "query", id: 7, questions: [{ type: "A", name }] })))!,
      );
    const r = await ask("tasks.web");
    expect(r.answers!.map((a) => a.data).sort()).toEqual(["198.19.206.11", "198.19.206.12"]);
    expect((await ask("secret")).rcode).toBe("NXDOMAIN");
  });
});

describe("docker network inspect of an overlay network", () => {
  it("is driver overlay, scope swarm, with the VXLAN id and this node's containers", () => {
    const d = toOverlayDockerNetwork(
      view(),
      [{ containerId: "c1", ip: "198.19.206.11", mac: overlayMac("198.19.206.11"), prefixLen: 24 }],
      () => "web.1",
      true,
    );
    expect(d).toMatchObject({
      Name: "front",
      Id: "net1",
      Driver: "overlay",
      Scope: "swarm",
      IPAM: { Config: [{ Subnet: "198.19.206.0/24", Gateway: "198.19.206.1" }] },
      Options: { "com.docker.network.driver.overlay.vxlanid_list": "4096" },
    });
    expect(d.Containers.c1).toMatchObject({ Name: "web.1", IPv4Address: "198.19.206.11/24" });
  });
});
