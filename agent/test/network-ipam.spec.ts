// Address management of the host network (agent/src/network/ipam.ts): pure, so tested hard.
import fc from "fast-check";
import { ConflictError, InvalidError } from "@flotilla/core";
import { describe, expect, it } from "vitest";
import { allocateAddress, inSubnet, intToIp, ipToInt, macForAddress, parseSubnet, prefixesOverlap } from "../src/network/ipam";

describe("parseSubnet", () => {
  it.each([
    ["172.31.0.0/16", "172.31.0.1", "172.31.255.255"],
    ["198.19.77.0/24", "198.19.77.1", "198.19.77.255"],
    ["198.18.0.0/15", "198.18.0.1", "198.19.255.255"],
    ["10.0.0.4/30", "10.0.0.5", "10.0.0.7"],
  ])("%s: gateway %s, broadcast %s", (cidr, gw, bc) => {
    const s = parseSubnet(cidr);
    expect(s.cidr).toBe(cidr);
    expect(intToIp(s.gateway)).toBe(gw);
    expect(intToIp(s.broadcast)).toBe(bc);
  });

  it.each(["198.19.77.1/24", "198.19.77.0", "198.19.77.0/31", "198.19.77.0/7", "198.19.77.0/x", "300.0.0.0/8", "198.19.77.0/24/1", ""])(
    "refuses %j",
    (cidr) => {
      expect(() => parseSubnet(cidr)).toThrow(InvalidError);
    },
  );

  it("suggests the network address when host bits are set", () => {
    expect(() => parseSubnet("198.19.77.9/24")).toThrow("did you mean 198.19.77.0/24?");
  });
});

describe("allocateAddress", () => {
  const s = parseSubnet("198.19.77.0/29"); // .1 gateway, .2-.6 containers, .7 broadcast

  it("starts after the gateway and goes round-robin from the last one handed out", () => {
    expect(allocateAddress(s, new Set())).toBe("198.19.77.2");
    expect(allocateAddress(s, new Set(), "198.19.77.2")).toBe("198.19.77.3");
    expect(allocateAddress(s, new Set(), "198.19.77.6")).toBe("198.19.77.2");
    expect(allocateAddress(s, new Set(["198.19.77.4", "198.19.77.5"]), "198.19.77.3")).toBe("198.19.77.6");
  });

  it("wraps around to free addresses and fails when the subnet is full", () => {
    expect(allocateAddress(s, new Set(["198.19.77.5", "198.19.77.6"]), "198.19.77.4")).toBe("198.19.77.2");
    const all = new Set(["198.19.77.2", "198.19.77.3", "198.19.77.4", "198.19.77.5", "198.19.77.6"]);
    expect(() => allocateAddress(s, all)).toThrow(ConflictError);
    expect(() => allocateAddress(s, all)).toThrow("no available IPv4 addresses on network 198.19.77.0/29");
  });

  it("ignores a last address outside the subnet", () => {
    expect(allocateAddress(s, new Set(), "10.0.0.1")).toBe("198.19.77.2");
  });

  it("never returns a taken, network, gateway or broadcast address (property)", () => {
    const subnet = parseSubnet("198.19.0.0/26");
    const host = fc.integer({ min: subnet.network, max: subnet.broadcast }).map(intToIp);
    fc.assert(
      fc.property(fc.uniqueArray(host, { maxLength: 70 }), fc.option(host, { nil: undefined }), (taken, last) => {
        const set = new Set(taken);
        const usable = 64 - 3 - taken.filter((t) => ![subnet.network, subnet.gateway, subnet.broadcast].includes(ipToInt(t))).length;
        if (usable === 0) {
          expect(() => allocateAddress(subnet, set, last)).toThrow(ConflictError);
          return;
        }
        const ip = allocateAddress(subnet, set, last);
        const n = ipToInt(ip);
        expect(set.has(ip)).toBe(false);
        expect(inSubnet(subnet, n)).toBe(true);
        expect([subnet.network, subnet.gateway, subnet.broadcast]).not.toContain(n);
      }),
    );
  });
});

describe("addresses", () => {
  it("converts both ways and refuses junk", () => {
    expect(intToIp(ipToInt("198.19.0.255"))).toBe("198.19.0.255");
    expect(ipToInt("255.255.255.255")).toBe(0xffffffff);
    for (const bad of ["1.2.3", "1.2.3.256", "01.2.3.4x", "::1"]) expect(() => ipToInt(bad)).toThrow(InvalidError);
  });

  it("derives a locally administered MAC from the address, as Docker does", () => {
    expect(macForAddress("172.17.0.2")).toBe("02:42:ac:11:00:02");
    expect(macForAddress("198.19.77.10")).toBe("02:42:c6:13:4d:0a");
  });

  it("detects overlapping prefixes", () => {
    const p = (c: string) => parseSubnet(c);
    expect(prefixesOverlap(p("198.19.0.0/16"), p("198.19.77.0/24"))).toBe(true);
    expect(prefixesOverlap(p("198.19.77.0/24"), p("198.19.0.0/16"))).toBe(true);
    expect(prefixesOverlap(p("198.19.77.0/24"), p("198.19.78.0/24"))).toBe(false);
    expect(prefixesOverlap(p("198.19.77.0/24"), { network: ipToInt("198.19.77.9"), prefixLen: 32 })).toBe(true);
  });
});
