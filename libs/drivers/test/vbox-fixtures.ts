// Shared by the virtualbox specs: a driver bound to a harness, and the expected call sequences.
import { join } from "node:path";
import { parseVirtualBoxOptions, VirtualBoxDriver, type RawOptions } from "@flotilla/drivers";
import type { Harness } from "./harness";

export const IP_PROP = "/VirtualBox/GuestInfo/Net/1/V4/IP";

/** A virtualbox driver on the stand-ins, with the harness's guest image and no shared folder unless asked. */
export function vboxDriver(h: Harness, name = "devdays", env: Record<string, string> = {}, raw: RawOptions = {}): VirtualBoxDriver {
  const options = parseVirtualBoxOptions({ "virtualbox-boot2docker-url": h.image, "virtualbox-no-share": true, ...raw });
  return new VirtualBoxDriver(h.ctx(name, env), options);
}

/** The calls a create on a fresh host makes, up to and including startvm. */
export function freshCreateSequence(name: string, store: string, image: string): string[][] {
  return [
    ["list", "hostonlyifs"],
    ["hostonlyif", "create"],
    ["hostonlyif", "ipconfig", "vboxnet0", "--ip", "192.168.99.1", "--netmask", "255.255.255.0"],
    ["list", "dhcpservers"],
    [
      "dhcpserver",
      "add",
      "--ifname",
      "vboxnet0",
      "--ip",
      "192.168.99.2",
      "--netmask",
      "255.255.255.0",
      "--lowerip",
      "192.168.99.100",
      "--upperip",
      "192.168.99.254",
      "--enable",
    ],
    ...machineSequence(name, store, image),
  ];
}

/** From the disk on: the guest image's VMDK cloned into the machine's disk, which is attached with the seed. */
export function machineSequence(name: string, store: string, image: string): string[][] {
  return [
    ["clonemedium", "disk", join(image, "disk.vmdk"), join(store, "disk.vdi"), "--format", "VDI"],
    ["closemedium", "disk", join(image, "disk.vmdk")],
    ["modifymedium", "disk", join(store, "disk.vdi"), "--resize", "20000"],
    ["createvm", "--name", name, "--basefolder", store, "--register"],
    [
      "modifyvm",
      name,
      "--ostype",
      "Linux26_64",
      "--cpus",
      "1",
      "--memory",
      "1024",
      "--acpi",
      "on",
      "--ioapic",
      "on",
      "--rtcuseutc",
      "on",
      "--pae",
      "on",
      "--hpet",
      "on",
      "--boot1",
      "disk",
      "--boot2",
      "none",
      "--boot3",
      "none",
      "--boot4",
      "none",
    ],
    [
      "modifyvm",
      name,
      "--nic1",
      "nat",
      "--nictype1",
      "virtio",
      "--cableconnected1",
      "on",
      "--natdnshostresolver1",
      "on",
      "--natdnsproxy1",
      "off",
      "--natpf1",
      "ssh,tcp,127.0.0.1,<port>,,22",
    ],
    [
      "modifyvm",
      name,
      "--nic2",
      "hostonly",
      "--nictype2",
      "virtio",
      "--nicpromisc2",
      "deny",
      "--hostonlyadapter2",
      "vboxnet0",
      "--cableconnected2",
      "on",
    ],
    ["storagectl", name, "--name", "SATA", "--add", "sata", "--hostiocache", "on"],
    ["storageattach", name, "--storagectl", "SATA", "--port", "0", "--device", "0", "--type", "hdd", "--medium", join(store, "disk.vdi")],
    [
      "storageattach",
      name,
      "--storagectl",
      "SATA",
      "--port",
      "1",
      "--device",
      "0",
      "--type",
      "dvddrive",
      "--medium",
      join(store, "seed.iso"),
    ],
    ["startvm", name, "--type", "headless"],
  ];
}

export const ipPoll = (name: string) => ["guestproperty", "get", name, IP_PROP];
export const info = (name: string) => ["showvminfo", name, "--machinereadable"];
