import { describe, expect, it } from "vitest";
import { InvalidError } from "@flotilla/core";
import { parseCidr, parseGenericOptions, parseHyperVOptions, parseVirtualBoxOptions, type RawOptions } from "@flotilla/drivers";

function invalid(parse: (raw: RawOptions) => unknown, raw: RawOptions): InvalidError {
  try {
    parse(raw);
  } catch (e) {
    expect(e).toBeInstanceOf(InvalidError);
    return e as InvalidError;
  }
  throw new Error(`expected InvalidError for ${JSON.stringify(raw)}`);
}

describe("virtualbox options", () => {
  it("applies the defaults", () => {
    const o = parseVirtualBoxOptions({});
    expect(o).toMatchObject({
      cpuCount: 1,
      memoryMB: 1024,
      diskSizeMB: 20000,
      imageUrl: undefined,
      hostonlyNicType: "virtio",
      hostonlyNicPromisc: "deny",
      natNicType: "virtio",
      shareFolder: undefined,
      noShare: false,
    });
    expect(o.hostonlyCidr).toEqual({
      address: "192.168.99.1",
      prefixLength: 24,
      netmask: "255.255.255.0",
      network: "192.168.99.0",
      broadcast: "192.168.99.255",
      text: "192.168.99.1/24",
    });
  });

  it("accepts strings from a CLI and numbers/booleans from JSON, with or without dashes", () => {
    const o = parseVirtualBoxOptions({
      "--virtualbox-cpu-count": "4",
      "virtualbox-memory": 4096,
      "virtualbox-no-share": "",
      "virtualbox-hostonly-cidr": "10.77.0.1/16",
    });
    expect([o.cpuCount, o.memoryMB, o.noShare, o.hostonlyCidr.text]).toEqual([4, 4096, true, "10.77.0.1/16"]);
    expect(parseVirtualBoxOptions({ "virtualbox-no-share": "false" }).noShare).toBe(false);
  });

  it.each<[RawOptions, string]>([
    [{ "virtualbox-memory": "lots" }, '--virtualbox-memory must be an integer number of MB, got "lots"'],
    [{ "virtualbox-memory": 1.5 }, "--virtualbox-memory must be an integer number of MB, got 1.5"],
    [{ "virtualbox-memory": 64 }, "--virtualbox-memory must be at least 128 MB, got 64"],
    [{ "virtualbox-cpu-count": "0" }, "--virtualbox-cpu-count must be at least 1, got 0"],
    [{ "virtualbox-cpu-count": true }, "--virtualbox-cpu-count must be an integer, got true"],
    [{ "virtualbox-disk-size": "20G" }, '--virtualbox-disk-size must be an integer number of MB, got "20G"'],
    [
      { "virtualbox-hostonly-cidr": "192.168.99.0/24" },
      '--virtualbox-hostonly-cidr must name the host\'s address inside the network (e.g. 192.168.99.1/24), not the network or broadcast address, got "192.168.99.0/24"',
    ],
    [
      { "virtualbox-hostonly-cidr": "192.168.99.1" },
      '--virtualbox-hostonly-cidr must be an IPv4 CIDR like 192.168.99.1/24, got "192.168.99.1"',
    ],
    [
      { "virtualbox-hostonly-cidr": "300.1.1.1/24" },
      '--virtualbox-hostonly-cidr must be an IPv4 CIDR like 192.168.99.1/24, got "300.1.1.1/24"',
    ],
    [
      { "virtualbox-hostonly-cidr": "10.0.0.1/31" },
      '--virtualbox-hostonly-cidr must have a prefix length between 8 and 30, got "10.0.0.1/31"',
    ],
    [
      { "virtualbox-hostonly-nictype": "e1000" },
      '--virtualbox-hostonly-nictype must be one of virtio, 82540EM, 82543GC, 82545EM, Am79C970A, Am79C973, got "e1000"',
    ],
    [{ "virtualbox-no-share": "maybe" }, '--virtualbox-no-share must be true or false, got "maybe"'],
    [
      { "virtualbox-share-folder": "/home" },
      '--virtualbox-share-folder must be HOSTDIR:NAME (NAME of letters, digits, "_", "-", "."), got "/home"',
    ],
    [
      { "virtualbox-memroy": "2048" },
      expect.stringMatching(
        /^unknown option --virtualbox-memroy for the virtualbox driver \(known: --virtualbox-cpu-count, --virtualbox-memory, /,
      ) as unknown as string,
    ],
  ])("rejects %j", (raw, message) => {
    const err = invalid(parseVirtualBoxOptions, raw);
    expect(err.message).toEqual(message);
    expect(err.details.field).toBe(Object.keys(raw)[0]);
  });

  it("keeps Windows drive letters in a share folder", () => {
    expect(parseVirtualBoxOptions({ "virtualbox-share-folder": "C:\\Users:hosthome" }).shareFolder).toBe("C:\\Users:hosthome");
  });
});

describe("hyperv options", () => {
  it("applies the defaults", () => {
    expect(parseHyperVOptions({})).toEqual({
      virtualSwitch: undefined,
      memoryMB: 1024,
      cpuCount: 1,
      diskSizeMB: 20000,
      imageUrl: undefined,
    });
  });

  it.each<[RawOptions, string]>([
    [{ "hyperv-memory": "1025" }, "--hyperv-memory must be a multiple of 2 MB (Hyper-V's rule), got 1025"],
    [{ "hyperv-memory": "a lot" }, '--hyperv-memory must be an integer number of MB, got "a lot"'],
    [{ "hyperv-cpu-count": "65" }, "--hyperv-cpu-count must be at most 64, got 65"],
    [{ "hyperv-disk-size": "-5" }, "--hyperv-disk-size must be at least 1024 MB, got -5"],
  ])("rejects %j", (raw, message) => {
    expect(invalid(parseHyperVOptions, raw).message).toBe(message);
  });
});

describe("generic options", () => {
  it("requires the address and defaults the rest", () => {
    expect(invalid(parseGenericOptions, {}).message).toBe("--generic-ip-address is required for the generic driver");
    expect(invalid(parseGenericOptions, { "generic-ip-address": "  " }).message).toBe(
      "--generic-ip-address is required for the generic driver",
    );
    expect(parseGenericOptions({ "generic-ip-address": "198.18.0.3" })).toEqual({
      ipAddress: "198.18.0.3",
      sshUser: "root",
      sshKey: undefined,
      sshPort: 22,
    });
  });

  it("expands ~ in the key path and takes IPv6 and host names", () => {
    const o = parseGenericOptions({ "generic-ip-address": "fd00::3", "generic-ssh-key": "~/.ssh/fleet", "generic-ssh-port": "2222" });
    expect(o.sshKey).toMatch(/\/\.ssh\/fleet$/);
    expect(o.sshKey!.startsWith("~")).toBe(false);
    expect(parseGenericOptions({ "generic-ip-address": "node-3.lab.example" }).ipAddress).toBe("node-3.lab.example");
  });

  it.each<[RawOptions, string]>([
    [
      { "generic-ip-address": "198.18.0.3; rm -rf /" },
      '--generic-ip-address must be an IP address or host name, got "198.18.0.3; rm -rf /"',
    ],
    [{ "generic-ip-address": "198.18.0.3", "generic-ssh-port": "70000" }, "--generic-ssh-port must be at most 65535, got 70000"],
    [
      { "generic-ip-address": "198.18.0.3", "generic-ssh-user": "root -oProxyCommand=x" },
      '--generic-ssh-user must be a user name, got "root -oProxyCommand=x"',
    ],
  ])("rejects %j", (raw, message) => {
    expect(invalid(parseGenericOptions, raw).message).toBe(message);
  });
});

describe("parseCidr", () => {
  it("computes mask, network and broadcast", () => {
    expect(parseCidr("10.20.30.40/20")).toMatchObject({ netmask: "255.255.240.0", network: "10.20.16.0", broadcast: "10.20.31.255" });
  });
});
