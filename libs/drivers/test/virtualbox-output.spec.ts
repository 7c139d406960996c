import { describe, expect, it } from "vitest";
import {
  dhcpPlan,
  MachineState,
  parseCidr,
  parseDhcpServers,
  parseGuestProperty,
  parseHostOnlyIfs,
  parseMachineReadable,
  parseVBoxVersion,
  vboxState,
  type Cidr,
} from "@flotilla/drivers";

describe("VBoxManage output parsers", () => {
  it("reads showvminfo --machinereadable, quoted keys included", () => {
    const info = parseMachineReadable(
      [
        'name="devdays"',
        "memory=1024",
        'VMState="running"',
        '"SATA-0-0"="/m/boot2docker.iso"',
        'Forwarding(0)="ssh,tcp,127.0.0.1,52011,,22"',
      ].join("\r\n"),
    );
    expect(info.get("VMState")).toBe("running");
    expect(info.get("memory")).toBe("1024");
    expect(info.get("SATA-0-0")).toBe("/m/boot2docker.iso");
  });

  it.each([
    ["running", MachineState.Running],
    ["poweroff", MachineState.Stopped],
    ["paused", MachineState.Paused],
    ["saved", MachineState.Saved],
    ["starting", MachineState.Starting],
    ["restoring", MachineState.Starting],
    ["stopping", MachineState.Stopping],
    ["saving", MachineState.Stopping],
    ["aborted", MachineState.Error],
    ["gurumeditation", MachineState.Error],
    [undefined, MachineState.Error],
  ])("maps VMState %s to %s", (vm, ours) => {
    expect(vboxState(vm)).toBe(ours);
  });

  it("reads versions", () => {
    expect(parseVBoxVersion("7.0.20r163906\n")).toEqual({ major: 7, minor: 0, text: "7.0.20r163906" });
    expect(parseVBoxVersion("5.1.38_Ubuntur122592")?.major).toBe(5);
    expect(parseVBoxVersion("garbage")).toBeUndefined();
  });

  it("reads VirtualBox 6 host-only interfaces and DHCP servers", () => {
    const ifs = parseHostOnlyIfs(
      [
        "Name:            vboxnet0",
        "GUID:            786f6276-656e-4074-8000-0a0027000000",
        "DHCP:            Disabled",
        "IPAddress:       192.168.56.1",
        "NetworkMask:     255.255.255.0",
        "IPV6Address:     fe80::800:27ff:fe00:0",
        "",
        "Name:            vboxnet1",
        "IPAddress:       192.168.99.1",
        "NetworkMask:     255.255.255.0",
      ].join("\n"),
    );
    expect(ifs).toEqual([
      { name: "vboxnet0", ip: "192.168.56.1", netmask: "255.255.255.0" },
      { name: "vboxnet1", ip: "192.168.99.1", netmask: "255.255.255.0" },
    ]);
    const v6 = parseDhcpServers(
      [
        "NetworkName:    HostInterfaceNetworking-vboxnet0",
        "IP:             192.168.56.100",
        "NetworkMask:    255.255.255.0",
        "lowerIPAddress: 192.168.56.101",
        "upperIPAddress: 192.168.56.254",
        "Enabled:        Yes",
      ].join("\n"),
    );
    expect(v6).toEqual([
      {
        networkName: "HostInterfaceNetworking-vboxnet0",
        ip: "192.168.56.100",
        netmask: "255.255.255.0",
        lowerIp: "192.168.56.101",
        upperIp: "192.168.56.254",
        enabled: true,
      },
    ]);
  });

  it("reads VirtualBox 7 DHCP servers, ignoring the nested option lists", () => {
    const v7 = parseDhcpServers(
      [
        "NetworkName:    HostInterfaceNetworking-vboxnet0",
        "Dhcpd IP:       192.168.99.2",
        "LowerIPAddress: 192.168.99.100",
        "UpperIPAddress: 192.168.99.254",
        "NetworkMask:    255.255.255.0",
        "Enabled:        No",
        "Global Configuration:",
        "    minLeaseTime:     default",
        "        1/legacy: 255.255.255.0",
        "",
        "NetworkName:    NatNetwork",
        "Dhcpd IP:       10.0.2.3",
        "LowerIPAddress: 10.0.2.4",
        "UpperIPAddress: 10.0.2.254",
        "NetworkMask:    255.255.255.0",
        "Enabled:        Yes",
      ].join("\n"),
    );
    expect(v7.map((d) => [d.networkName, d.ip, d.enabled])).toEqual([
      ["HostInterfaceNetworking-vboxnet0", "192.168.99.2", false],
      ["NatNetwork", "10.0.2.3", true],
    ]);
  });

  it("reads guest properties", () => {
    expect(parseGuestProperty("Value: 192.168.99.100\n")).toBe("192.168.99.100");
    expect(parseGuestProperty("No value set!\n")).toBeUndefined();
  });
});

describe("dhcpPlan", () => {
  const c = (t: string) => parseCidr(t) as Cidr;
  it("puts the server after the host and guests from .100 in a /24", () => {
    expect(dhcpPlan(c("192.168.99.1/24"))).toEqual({ serverIp: "192.168.99.2", lowerIp: "192.168.99.100", upperIp: "192.168.99.254" });
  });
  it("fits small networks and avoids the host's address", () => {
    expect(dhcpPlan(c("10.9.0.1/28"))).toEqual({ serverIp: "10.9.0.2", lowerIp: "10.9.0.7", upperIp: "10.9.0.14" });
    expect(dhcpPlan(c("10.9.0.2/24")).serverIp).toBe("10.9.0.3");
    expect(dhcpPlan(c("10.9.0.150/24")).lowerIp).toBe("10.9.0.151");
  });
});
