// planAttachments: what a container's overlay requests become before anything is plugged, and
// each refusal (a network not in the table, an address that is not a task address of it, one
// another container holds), naming the field.
import { DomainError, InvalidError, overlayMac, type NodeNetworkTable } from "@flotilla/core";
import { describe, expect, it } from "vitest";
import { planAttachments, toAttachment, type PlugTarget } from "../src/overlay/overlay-attachments";
import { overlayVethName } from "../src/overlay/overlay-plan";
import type { OverlayContainerRecord } from "../src/overlay/overlay-state";

const NET = "n".repeat(24);
const table: NodeNetworkTable = {
  version: "v7",
  nodeAddress: "198.18.5.2",
  networks: [{ id: NET, name: "backend", vni: 4100, subnet: "10.9.0.0/24", gateway: "10.9.0.1", peers: [], endpoints: [], services: [] }],
};
const target: PlugTarget = { scope: "flt0", containerId: "c".repeat(64), netns: "flt-cccc", firstIndex: 1 };
const other: OverlayContainerRecord = {
  containerId: "d".repeat(64),
  primaryIp: "172.31.0.3",
  dns: false,
  attachments: [
    {
      ...planAttachments(table, [], { ...target, containerId: "d".repeat(64) }, [
        { networkId: NET, aliases: [], ipv4Address: "10.9.0.5" },
      ])[0]!,
    },
  ],
};

describe("planAttachments", () => {
  it("gives each request its interface, MAC, veth and namespace", () => {
    const [a] = planAttachments(table, [other], target, [{ networkId: NET, aliases: ["web"], ipv4Address: "10.9.0.4" }]);
    expect(a).toEqual({
      networkId: NET,
      networkName: "backend",
      ip: "10.9.0.4",
      prefixLen: 24,
      mac: overlayMac("10.9.0.4"),
      aliases: ["web"],
      ifname: "eth1",
      veth: overlayVethName("flt0", NET, target.containerId),
      netns: "flt-cccc",
    });
    expect(toAttachment(a!)).toEqual({
      networkId: NET,
      networkName: "backend",
      ipAddress: "10.9.0.4",
      prefixLen: 24,
      gateway: "",
      macAddress: overlayMac("10.9.0.4"),
      aliases: ["web"],
    });
  });

  it("refuses a network the table does not list, naming the table's version", () => {
    const plan = () => planAttachments(table, [], target, [{ networkId: "x".repeat(24), aliases: [], ipv4Address: "10.9.0.4" }]);
    expect(plan).toThrow(DomainError);
    expect(plan).toThrow(/is not in this node's network table \(version v7\)/);
    expect(() => planAttachments(undefined, [], target, [{ networkId: NET, aliases: [], ipv4Address: "10.9.0.4" }])).toThrow(
      /version none/,
    );
  });

  it.each(["10.9.1.4", "10.9.0.1", "not-an-ip", ""])("refuses %j, which is not a task address of the network", (ip) => {
    const plan = () => planAttachments(table, [], target, [{ networkId: NET, aliases: [], ipv4Address: ip }]);
    expect(plan).toThrow(InvalidError);
    try {
      plan();
    } catch (e) {
      expect((e as InvalidError).details).toEqual({ field: "EndpointsConfig.backend.IPAMConfig.IPv4Address" });
    }
  });

  it("refuses an address another container holds on the network, but not the container's own", () => {
    expect(() => planAttachments(table, [other], target, [{ networkId: NET, aliases: [], ipv4Address: "10.9.0.5" }])).toThrow(
      /address 10\.9\.0\.5 is already used by container dddddddddddd/,
    );
    const again = { ...other, containerId: target.containerId };
    expect(planAttachments(table, [again], target, [{ networkId: NET, aliases: [], ipv4Address: "10.9.0.5" }])).toHaveLength(1);
  });
});
