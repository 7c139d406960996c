// The driver registry: name → factory. Adding a driver is one entry here.
import { InvalidError } from "@flotilla/core";
import type { Driver, DriverContext, DriverFactory } from "./driver";
import { genericDriver } from "./generic.driver";
import { hypervDriver } from "./hyperv.driver";
import { netnsDriver } from "./netns.driver";
import { qemuDriver } from "./qemu.driver";
import type { RawOptions } from "./options";
import { virtualboxDriver } from "./virtualbox.driver";

export const drivers: Readonly<Record<string, DriverFactory>> = {
  virtualbox: virtualboxDriver,
  hyperv: hypervDriver,
  generic: genericDriver,
  netns: netnsDriver,
  qemu: qemuDriver,
};

/** Names of the registered drivers, sorted, for help texts and error messages. */
export function driverNames(): string[] {
  return Object.keys(drivers).sort();
}

/** The factory registered as `name`; InvalidError listing the known drivers otherwise. */
export function getDriver(name: string): DriverFactory {
  const factory = Object.hasOwn(drivers, name) ? drivers[name] : undefined;
  if (!factory) {
    throw new InvalidError(`unknown driver ${JSON.stringify(name)}; known drivers: ${driverNames().join(", ")}`, {
      field: "driver",
      known: driverNames(),
    });
  }
  return factory;
}

/** Looks the driver up, parses its raw options and binds it to a machine, in one call. */
export function openDriver(name: string, ctx: DriverContext, raw: RawOptions): Driver {
  const factory = getDriver(name);
  return factory.bind(ctx, factory.parseOptions(raw));
}
