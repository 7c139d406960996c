import { describe, expect, it } from "vitest";
import { InvalidError } from "@flotilla/core";
import { driverNames, drivers, getDriver, openDriver, createExecRunner } from "@flotilla/drivers";

describe("driver registry", () => {
  it("knows virtualbox, hyperv, generic, netns and qemu", () => {
    expect(driverNames()).toEqual(["generic", "hyperv", "netns", "qemu", "virtualbox"]);
    expect(getDriver("virtualbox")).toBe(drivers.virtualbox);
  });

  it("names the known drivers when asked for an unknown one", () => {
    expect(() => getDriver("vmware")).toThrow(InvalidError);
    expect(() => getDriver("vmware")).toThrow('unknown driver "vmware"; known drivers: generic, hyperv, netns, qemu, virtualbox');
    // Not fooled by Object.prototype.
    expect(() => getDriver("toString")).toThrow(InvalidError);
  });

  it("opens a driver from raw flags in one call", () => {
    const d = openDriver(
      "generic",
      { machineName: "edge-1", storeDir: "/tmp/x", runner: createExecRunner() },
      { "generic-ip-address": "198.18.0.9" },
    );
    expect([d.driverName, d.machineName]).toEqual(["generic", "edge-1"]);
    expect(() => openDriver("generic", { machineName: "edge-1", storeDir: "/tmp/x", runner: createExecRunner() }, {})).toThrow(
      "--generic-ip-address is required for the generic driver",
    );
  });

  describe.each(Object.values(drivers))("$name self-description", (factory) => {
    it("has prefixed, unique, documented options whose defaults parse", () => {
      const names = factory.options.map((o) => o.name);
      expect(new Set(names).size).toBe(names.length);
      for (const o of factory.options) {
        expect(o.name.startsWith(`${factory.name}-`)).toBe(true);
        expect(o.help.length).toBeGreaterThan(5);
        if (o.type === "enum") expect(o.choices).toContain(o.default);
      }
      // Renderable by a UI that knows nothing about drivers.
      expect(JSON.parse(JSON.stringify(factory.options))).toEqual(factory.options);
      const required = Object.fromEntries(factory.options.filter((o) => o.required).map((o) => [o.name, "198.18.0.1"]));
      expect(() => factory.parseOptions(required)).not.toThrow();
    });
  });
});
