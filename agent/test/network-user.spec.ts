// The pure parts of user-defined networks: the create request, subnet choice, the per-network
// iptables rules, the DNS decisions and the DNS server's answers (decoded with dns-packet).
import { ConflictError, InvalidError, NotSupportedError } from "@flotilla/core";
import packet from "dns-packet";
import { describe, expect, it } from "vitest";
import { resolveQuery } from "../src/network/dns-names";
import { EmbeddedDns, upstreamsFromResolvConf } from "../src/network/dns-server";
import { allocateAddress, parseSubnet } from "../src/network/ipam";
import { chainNames } from "../src/network/nat-rules";
import { dnsRedirectScript, netTagIn, networkRules } from "../src/network/user-network-rules";
import { checkSubnet, chooseSubnet, parseCreateNetwork } from "../src/network/user-network-spec";
import type { UserNetworkRecord } from "../src/network/user-network-state";

const c = chainNames("FLOTILLA");

function net(
  id: string,
  name: string,
  subnet: string,
  endpoints: Array<[string, string, string, string[]]>,
  internal = false,
): UserNetworkRecord {
  return {
    id,
    name,
    driver: "bridge",
    created: "2026-01-01T00:00:00Z",
    bridge: `flu${id}`,
    subnet,
    gateway: subnet.replace(/0\/24$/, "1"),
    userSubnet: true,
    internal,
    attachable: false,
    labels: {},
    options: {},
    endpoints: Object.fromEntries(
      endpoints.map(([containerId, cname, ip, aliases]) => [
        containerId,
        { containerId, name: cname, aliases, ipAddress: ip, macAddress: "", veth: "", ifname: "eth0", netns: "", status: "ready" as const },
      ]),
    ),
  };
}

describe("network create request", () => {
  it("accepts Docker's bridge request with IPAM and names every refused field", () => {
    const plan = parseCreateNetwork({
      Name: "front",
      Internal: true,
      Labels: { a: "b" },
      IPAM: { Config: [{ Subnet: "198.18.5.0/24", Gateway: "198.18.5.254", IPRange: "198.18.5.128/25" }] },
    });
    expect(plan).toMatchObject({ name: "front", internal: true, labels: { a: "b" }, gateway: "198.18.5.254" });
    expect(plan.subnet!.cidr).toBe("198.18.5.0/24");
    expect(plan.ipRange!.cidr).toBe("198.18.5.128/25");
    const refused: Array<[object, unknown, string]> = [
      [{ Name: "bridge" }, ConflictError, "pre-defined"],
      [{ Name: "bad name" }, InvalidError, "invalid network name"],
      [{ Name: "x", Driver: "overlay" }, NotSupportedError, "overlay networks are created with ctl network create"],
      [{ Name: "x", Driver: "macvlan" }, NotSupportedError, "macvlan"],
      [{ Name: "x", EnableIPv6: true }, NotSupportedError, "IPv6"],
      [{ Name: "x", Options: { "com.docker.network.bridge.name": "br9" } }, NotSupportedError, "com.docker.network.bridge.name"],
      [
        { Name: "x", IPAM: { Config: [{ Subnet: "198.18.5.0/24" }, { Subnet: "198.18.6.0/24" }] } },
        NotSupportedError,
        "only one IPAM config",
      ],
      [{ Name: "x", IPAM: { Config: [{ Subnet: "198.18.5.0/33" }] } }, InvalidError, "IPAM.Config[0].Subnet"],
      [{ Name: "x", IPAM: { Config: [{ Subnet: "198.18.5.0/24", Gateway: "198.18.6.1" }] } }, InvalidError, "not a host address"],
      [{ Name: "x", IPAM: { Config: [{ Subnet: "198.18.5.0/24", IPRange: "198.18.6.0/25" }] } }, InvalidError, "not inside subnet"],
      [{ Name: "x", IPAM: { Config: [{ Gateway: "198.18.6.1" }] } }, InvalidError, "needs a subnet"],
    ];
    for (const [body, type, text] of refused) {
      expect(() => parseCreateNetwork(body), JSON.stringify(body)).toThrow(type as never);
      expect(() => parseCreateNetwork(body), JSON.stringify(body)).toThrow(text);
    }
  });

  it("chooses the first pool subnet nothing overlaps, and refuses a user subnet that overlaps", () => {
    const taken = [
      { ...parseSubnet("198.18.180.0/24"), what: "network a (198.18.180.0/24)" },
      { ...parseSubnet("198.18.181.128/25"), what: "the host route x" },
    ];
    expect(chooseSubnet([{ base: "198.18.180.0/22", size: 24 }], taken).cidr).toBe("198.18.182.0/24");
    expect(() => chooseSubnet([{ base: "198.18.180.0/23", size: 24 }], taken)).toThrow(ConflictError);
    expect(() => checkSubnet(parseSubnet("198.18.180.0/25"), taken)).toThrow("subnet 198.18.180.0/25 overlaps network a (198.18.180.0/24)");
    expect(() => checkSubnet(parseSubnet("198.18.176.0/20"), taken)).toThrow(ConflictError);
    expect(() => checkSubnet(parseSubnet("198.18.183.0/24"), taken)).not.toThrow();
  });

  it("hands out addresses from the ip-range only, never the gateway", () => {
    const subnet = parseSubnet("198.18.5.0/24");
    const range = parseSubnet("198.18.5.252/30");
    const gateway = "198.18.5.254";
    const first = allocateAddress(subnet, new Set([gateway]), undefined, range);
    const second = allocateAddress(subnet, new Set([gateway, first]), first, range);
    expect([first, second]).toEqual(["198.18.5.252", "198.18.5.253"]);
    // .254 is the gateway and .255 the subnet's broadcast: the range is full.
    expect(() => allocateAddress(subnet, new Set([gateway, first, second]), second, range)).toThrow(
      "no available IPv4 addresses on network 198.18.5.252/30",
    );
  });
});

describe("network rules", () => {
  it("isolates each network: replies, members and published ports in, the rest dropped; egress after", () => {
    const r = networkRules(c, { id: "ab12", bridge: "fluab12", subnet: "198.18.5.0/24", internal: false });
    expect(r.filter).toEqual([
      '-A FLOTILLA-NIN -o fluab12 -m conntrack --ctstate RELATED,ESTABLISHED -m comment --comment "flotilla-net:ab12" -j ACCEPT',
      '-A FLOTILLA-NIN -i fluab12 -o fluab12 -m comment --comment "flotilla-net:ab12" -j ACCEPT',
      '-A FLOTILLA-NIN -o fluab12 -m comment --comment "flotilla-net:ab12" -j FLOTILLA-PORTS',
      '-A FLOTILLA-NIN -o fluab12 -m comment --comment "flotilla-net:ab12" -j DROP',
      '-A FLOTILLA-NOUT -i fluab12 -m comment --comment "flotilla-net:ab12" -j ACCEPT',
      '-A FLOTILLA-NLO -d 127.0.0.0/8 -i fluab12 -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -m comment --comment "flotilla-net:ab12" -j DROP',
    ]);
    expect(r.nat[0]).toBe('-A FLOTILLA-NPOST -s 198.18.5.0/24 ! -o fluab12 -m comment --comment "flotilla-net:ab12" -j MASQUERADE');
    expect([...r.nat, ...r.filter].map(netTagIn)).toEqual(Array(9).fill("ab12"));
    // A container tag is not a network tag.
    expect(netTagIn('-A FLOTILLA-PORTS -m comment --comment "flotilla:web-1" -j ACCEPT')).toBeUndefined();
  });

  it("gives an internal network no NAT and no way in or out", () => {
    const r = networkRules(c, { id: "cd34", bridge: "flucd34", subnet: "198.18.6.0/24", internal: true });
    expect(r.nat).toEqual([]);
    expect(r.filter.filter((l) => l.endsWith("-j ACCEPT"))).toEqual([
      '-A FLOTILLA-NIN -i flucd34 -o flucd34 -m comment --comment "flotilla-net:cd34" -j ACCEPT',
    ]);
    expect(r.filter.join("\n")).not.toContain("FLOTILLA-NOUT");
  });

  it("redirects 127.0.0.11:53 in the container to the gateway, from the container's address", () => {
    const script = dnsRedirectScript("198.18.5.1", "198.18.5.7", 53);
    expect(script).toContain("-A OUTPUT -d 127.0.0.11/32 -p udp -m udp --dport 53 -j DNAT --to-destination 198.18.5.1:53");
    expect(script).toContain("-A POSTROUTING -s 127.0.0.0/8 -d 198.18.5.1/32 -p tcp -m tcp --dport 53 -j SNAT --to-source 198.18.5.7");
    expect(script.startsWith("*nat\n")).toBe(true);
    expect(script.trimEnd().endsWith("COMMIT")).toBe(true);
  });
});

describe("embedded DNS", () => {
  const a = net("aa", "front", "198.18.5.0/24", [
    ["c1".padEnd(64, "1"), "web", "198.18.5.2", ["www"]],
    ["c2".padEnd(64, "2"), "db", "198.18.5.3", []],
  ]);
  const b = net("bb", "back", "198.18.6.0/24", [
    ["c2".padEnd(64, "2"), "db", "198.18.6.2", ["database"]],
    ["c3".padEnd(64, "3"), "other", "198.18.6.3", []],
  ]);
  const i = net("cc", "sealed", "198.18.7.0/24", [["c4".padEnd(64, "4"), "lonely", "198.18.7.2", []]], true);
  const all = [a, b, i];

  it("resolves names, aliases and short ids on the asker's networks only", () => {
    expect(resolveQuery(all, "aa", "198.18.5.3", "WEB.")).toEqual({ kind: "answer", addresses: ["198.18.5.2"] });
    expect(resolveQuery(all, "aa", "198.18.5.3", "www")).toEqual({ kind: "answer", addresses: ["198.18.5.2"] });
    expect(resolveQuery(all, "aa", "198.18.5.3", "c1".padEnd(12, "1"))).toEqual({ kind: "answer", addresses: ["198.18.5.2"] });
    // db is on both networks: it sees "other" on back; web (front only) does not.
    expect(resolveQuery(all, "aa", "198.18.5.3", "other")).toEqual({ kind: "answer", addresses: ["198.18.6.3"] });
    expect(resolveQuery(all, "aa", "198.18.5.2", "other")).toEqual({ kind: "forward" });
    expect(resolveQuery(all, "bb", "198.18.6.3", "database")).toEqual({ kind: "answer", addresses: ["198.18.6.2"] });
    expect(resolveQuery(all, "bb", "198.18.6.3", "www")).toEqual({ kind: "forward" });
    // Internal-only containers get no answers from outside; strangers are refused.
    expect(resolveQuery(all, "cc", "198.18.7.2", "example.org")).toEqual({ kind: "nxdomain" });
    expect(resolveQuery(all, "aa", "198.18.5.99", "web")).toEqual({ kind: "refuse" });
    expect(resolveQuery(all, "aa", "198.18.6.3", "web")).toEqual({ kind: "refuse" });
  });

  it("answers A queries, NOERROR without data for other types, and relays the rest (SERVFAIL without upstreams)", async () => {
    const dns = new EmbeddedDns({ port: 0, upstreams: () => [], decide: (n, ip, q) => resolveQuery(all, n, ip, q) });
    const ask = async (ip: string, name: string, type: "A" | "AAAA" = "A") => {
      const q = packet.encode({ type: "query", id: 42, flags: packet.RECURSION_DESIRED, questions: [{ type, name, class: "IN" }] });
      return packet.decode((await dns.answer("aa", ip, q))!);
    };
    const web = await ask("198.18.5.3", "web");
    expect(web).toMatchObject({ id: 42, type: "response", rcode: "NOERROR" });
    expect(web.answers!.map((x) => x.data)).toEqual(["198.18.5.2"]);
    expect((await ask("198.18.5.3", "web", "AAAA")).answers).toEqual([]);
    expect((await ask("198.18.5.3", "example.org")).rcode).toBe("SERVFAIL");
    expect((await ask("198.18.5.99", "web")).rcode).toBe("REFUSED");
  });

  it("reads the host's resolvers from resolv.conf", () => {
    expect(upstreamsFromResolvConf("# x\nnameserver 127.0.0.53\nnameserver ::1\nsearch lan\nnameserver 10.0.0.2 \n")).toEqual([
      { host: "127.0.0.53", port: 53 },
      { host: "10.0.0.2", port: 53 },
    ]);
  });
});
