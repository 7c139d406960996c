// The qemu driver's options (docker-machine style --qemu-* flags): their specs, shown by ctl and
// the console's create form, and their parsing with a clear refusal naming the flag.
import { InvalidError } from "@flotilla/core";
import type { Cidr } from "./net";
import { OptionReader, type OptionSpec, type RawOptions } from "./options";
import type { QemuAccelChoice } from "./qemu-plan";

export interface QemuOptions {
  cpus: number;
  memoryMb: number;
  diskMb: number;
  image?: string;
  accel: QemuAccelChoice;
  cidr: Cidr;
  bridge: string;
  sshUser: string;
}

export const qemuOptionSpecs: readonly OptionSpec[] = [
  { name: "qemu-cpu-count", type: "int", default: 1, min: 1, max: 64, help: "Number of virtual CPUs" },
  {
    name: "qemu-memory",
    type: "int",
    default: 1024,
    unit: "MB",
    min: 1,
    help: "Memory of the VM in MB (at least the guest image's minimum)",
  },
  {
    name: "qemu-disk-size",
    type: "int",
    default: 20000,
    unit: "MB",
    min: 1,
    help: "Size of the VM's disk in MB (at least the guest image's size)",
  },
  {
    name: "qemu-image",
    type: "path",
    help: "Flotilla guest image directory (default: the cached image of this version, built by scripts/build-guest-image.sh)",
  },
  {
    name: "qemu-accel",
    type: "enum",
    default: "auto",
    choices: ["auto", "kvm", "tcg"],
    help: "Accelerator: kvm, tcg (software), or auto (KVM when /dev/kvm works, else TCG)",
  },
  {
    name: "qemu-network-cidr",
    type: "cidr",
    default: "198.18.0.1/16",
    help: "Host bridge address and the VMs' network (inside 198.18.0.0/15; shared with netns machines)",
  },
  {
    name: "qemu-bridge",
    type: "string",
    default: "flmach0",
    help: "Host bridge the VMs are attached to (the netns machines' bridge by default)",
  },
  {
    name: "qemu-ssh-user",
    type: "string",
    default: "root",
    help: "User the guest is seeded with (others than root get passwordless sudo)",
  },
];

export function parseQemuOptions(raw: RawOptions): QemuOptions {
  const r = new OptionReader("qemu", qemuOptionSpecs, raw);
  const options: QemuOptions = {
    cpus: r.int("qemu-cpu-count"),
    memoryMb: r.int("qemu-memory"),
    diskMb: r.int("qemu-disk-size"),
    image: r.path("qemu-image"),
    accel: r.choice<QemuAccelChoice>("qemu-accel"),
    cidr: r.cidr("qemu-network-cidr"),
    bridge: r.string("qemu-bridge")!,
    sshUser: r.string("qemu-ssh-user")!,
  };
  r.done();
  const inRange = (ip: string) => /^198\.(18|19)\./.test(ip);
  if (!inRange(options.cidr.network) || !inRange(options.cidr.broadcast)) {
    throw new InvalidError(`--qemu-network-cidr must lie inside 198.18.0.0/15, got ${options.cidr.text}`, { field: "qemu-network-cidr" });
  }
  if (!/^[a-zA-Z0-9_.-]{1,15}$/.test(options.bridge)) {
    throw new InvalidError(
      `--qemu-bridge must be an interface name (1-15 letters, digits, "_", "." or "-"), got ${JSON.stringify(options.bridge)}`,
      { field: "qemu-bridge" },
    );
  }
  if (!/^[a-z_][a-z0-9_-]{0,31}$/.test(options.sshUser)) {
    throw new InvalidError(
      `--qemu-ssh-user must be a user name (lower-case letters, digits, "_" and "-"), got ${JSON.stringify(options.sshUser)}`,
      { field: "qemu-ssh-user" },
    );
  }
  return options;
}
