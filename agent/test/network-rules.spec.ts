// iptables rule text of the host network (agent/src/network/nat-rules.ts) and the Docker JSON
// shapes built from an endpoint (docker-shapes.ts). Pure.
import { describe, expect, it } from "vitest";
import { toNetworkSettings, toPortSummaries } from "../src/network/docker-shapes";
import type { Endpoint } from "../src/network/endpoint";
import {
  chainNames,
  deleteOf,
  endpointRules,
  insertOf,
  jumpRules,
  MAX_PREFIX,
  parseListing,
  staticChains,
  tagIn,
} from "../src/network/nat-rules";

const c = chainNames("FLOTILLA");

describe("rules", () => {
  it("writes per-port rules in the form iptables -S prints, tagged with the container", () => {
    const r = endpointRules(c, "web-1", "172.31.0.2", [
      { hostIp: "0.0.0.0", hostPort: 8000, containerPort: 80, protocol: "tcp" },
      { hostIp: "127.0.0.1", hostPort: 5353, containerPort: 53, protocol: "udp" },
    ]);
    expect(r.nat).toEqual([
      '-A FLOTILLA-DNAT -p tcp -m tcp --dport 8000 -m comment --comment "flotilla:web-1" -j DNAT --to-destination 172.31.0.2:80',
      '-A FLOTILLA-DNAT -d 127.0.0.1/32 -p udp -m udp --dport 5353 -m comment --comment "flotilla:web-1" -j DNAT --to-destination 172.31.0.2:53',
    ]);
    expect(r.filter).toEqual([
      '-A FLOTILLA-PORTS -d 172.31.0.2/32 -p tcp -m tcp --dport 80 -m conntrack --ctstate DNAT -m comment --comment "flotilla:web-1" -j ACCEPT',
      '-A FLOTILLA-PORTS -d 172.31.0.2/32 -p udp -m udp --dport 53 -m conntrack --ctstate DNAT -m comment --comment "flotilla:web-1" -j ACCEPT',
    ]);
    expect([...r.nat, ...r.filter].map(tagIn)).toEqual(["web-1", "web-1", "web-1", "web-1"]);
  });

  it("finds tags with or without quotes, and none in untagged rules", () => {
    expect(tagIn("-A X -m comment --comment flotilla:abc.1 -j RETURN")).toBe("abc.1");
    expect(tagIn('-A X -m comment --comment "flotilla:abc_2" -j RETURN')).toBe("abc_2");
    expect(tagIn('-A X -m comment --comment "other:abc" -j RETURN')).toBeUndefined();
    expect(tagIn("-A X -j RETURN")).toBeUndefined();
  });

  it("sends local destinations (127.0.0.1 included) to the DNAT chain from PREROUTING and OUTPUT", () => {
    expect(jumpRules(c).nat).toEqual([
      "-A PREROUTING -m addrtype --dst-type LOCAL -j FLOTILLA-DNAT",
      "-A OUTPUT -m addrtype --dst-type LOCAL -j FLOTILLA-DNAT",
      "-A POSTROUTING -j FLOTILLA-POST",
    ]);
  });

  it("masquerades egress, host-to-container and hairpin traffic; guards route_localnet", () => {
    const s = staticChains(c, "flt0", "172.31.0.0/16");
    expect(s.nat[0].rules).toEqual([
      "-A FLOTILLA-POST -j FLOTILLA-NPOST",
      "-A FLOTILLA-POST -s 172.31.0.0/16 ! -o flt0 -j MASQUERADE",
      "-A FLOTILLA-POST -o flt0 -m addrtype --src-type LOCAL -j MASQUERADE",
      "-A FLOTILLA-POST -s 172.31.0.0/16 -o flt0 -m conntrack --ctstate DNAT -j MASQUERADE",
    ]);
    const input = s.filter.find((x) => x.chain === "FLOTILLA-INPUT")!;
    expect(input.rules[0]).toContain("-d 127.0.0.0/8 -i flt0 -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP");
    // The FWD chain drops new inbound connections that are not to a published port; user
    // networks' inbound rules come before everything, their egress after that DROP.
    const fwd = s.filter.find((x) => x.chain === "FLOTILLA-FWD")!.rules;
    expect(fwd[0]).toBe("-A FLOTILLA-FWD -j FLOTILLA-NIN");
    expect(fwd.slice(-2)).toEqual(["-A FLOTILLA-FWD -o flt0 -j DROP", "-A FLOTILLA-FWD -j FLOTILLA-NOUT"]);
    expect(input.rules[1]).toBe("-A FLOTILLA-INPUT -j FLOTILLA-NLO");
  });

  it("keeps every chain name within iptables' 28 characters", () => {
    for (const name of Object.values(chainNames("P".repeat(MAX_PREFIX)))) expect(name.length).toBeLessThanOrEqual(28);
  });

  it("parses a listing and derives -D and -I lines", () => {
    const l = parseListing("-P PREROUTING ACCEPT\n-N FLOTILLA-DNAT\n-A PREROUTING -m addrtype --dst-type LOCAL -j FLOTILLA-DNAT\n");
    expect([...l.chains]).toEqual(["FLOTILLA-DNAT"]);
    expect(l.rules).toEqual(["-A PREROUTING -m addrtype --dst-type LOCAL -j FLOTILLA-DNAT"]);
    expect(deleteOf(l.rules[0])).toBe("-D PREROUTING -m addrtype --dst-type LOCAL -j FLOTILLA-DNAT");
    expect(insertOf(l.rules[0])).toBe("-I PREROUTING 1 -m addrtype --dst-type LOCAL -j FLOTILLA-DNAT");
  });
});

describe("Docker shapes", () => {
  const bridge: Endpoint = {
    containerId: "web-1",
    mode: "bridge",
    netnsPath: "/run/netns/flt-web-1",
    ipAddress: "172.31.0.2",
    gateway: "172.31.0.1",
    macAddress: "02:42:ac:1f:00:02",
    prefixLen: 16,
    ports: [
      { hostIp: "0.0.0.0", hostPort: 8000, containerPort: 80, protocol: "tcp" },
      { hostIp: "127.0.0.1", hostPort: 8001, containerPort: 80, protocol: "tcp" },
    ],
    hostInterface: "veth1234567",
  };

  it("NetworkSettings of a bridge container, exposed-only ports as null", () => {
    const s = toNetworkSettings(bridge, "n".repeat(64), ["80/tcp", "443"]);
    expect(s).toMatchObject({
      SandboxKey: "/run/netns/flt-web-1",
      IPAddress: "172.31.0.2",
      Gateway: "172.31.0.1",
      IPPrefixLen: 16,
      MacAddress: "02:42:ac:1f:00:02",
      Ports: {
        "80/tcp": [
          { HostIp: "0.0.0.0", HostPort: "8000" },
          { HostIp: "127.0.0.1", HostPort: "8001" },
        ],
        "443/tcp": null,
      },
      Networks: { bridge: { NetworkID: "n".repeat(64), IPAddress: "172.31.0.2", Gateway: "172.31.0.1", IPPrefixLen: 16 } },
    });
    expect(s.EndpointID).toMatch(/^[0-9a-f]{64}$/);
    expect(s.Networks.bridge.EndpointID).toBe(s.EndpointID);
  });

  it("host and none containers: named network, empty addresses", () => {
    const host = toNetworkSettings(
      { ...bridge, mode: "host", netnsPath: null, ipAddress: "", gateway: "", macAddress: "", prefixLen: 0, ports: [] },
      "n",
    );
    expect(Object.keys(host.Networks)).toEqual(["host"]);
    expect(host).toMatchObject({ IPAddress: "", SandboxKey: "", EndpointID: "", Ports: {} });
    const none = toNetworkSettings({ ...bridge, mode: "none", ipAddress: "", gateway: "", macAddress: "", prefixLen: 0, ports: [] }, "n");
    expect(Object.keys(none.Networks)).toEqual(["none"]);
  });

  it("container list Ports: published and exposed-only, sorted", () => {
    expect(toPortSummaries(bridge, ["80/tcp", "53/udp"])).toEqual([
      { PrivatePort: 53, Type: "udp" },
      { IP: "0.0.0.0", PrivatePort: 80, PublicPort: 8000, Type: "tcp" },
      { IP: "127.0.0.1", PrivatePort: 80, PublicPort: 8001, Type: "tcp" },
    ]);
  });
});
