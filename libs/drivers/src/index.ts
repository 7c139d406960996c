// Machine drivers behind one Driver interface (see README.md).
export * from "./driver";
export * from "./options";
export * from "./command-runner";
export * from "./ssh";
export * from "./ssh-keygen";
export * from "./registry";
export { withHostLock, type HostLockOptions } from "./lock";
export { defaultLockDir, ensurePrivateDir, readFileNoFollow, writeFileNoFollow } from "./private-dir";
export { pollUntil, sleep, type PollOptions } from "./poll";
export { probeTcp, findFreePort, parseCidr, hostPort, formatDuration, type Cidr, type TcpProbe } from "./net";
export { isoImage, seedFiles, seedIso, type MachineSeed } from "./seed-iso";
export { GUEST_SSH_USER, KEY_FILE, PINNED_HOST_KEY, SEED_FILE } from "./machine-files";
export { locateVmDisk, checkGuestFits, type VmDisk, type VmDiskFormat } from "./guest-disk";
export {
  VirtualBoxDriver,
  virtualboxDriver,
  virtualboxOptionSpecs,
  parseVirtualBoxOptions,
  dhcpPlan,
  VBOX_CREATE_LOCK,
  type VirtualBoxOptions,
  type VBoxNicType,
  type VBoxPromiscMode,
} from "./virtualbox.driver";
export {
  parseMachineReadable,
  parseHostOnlyIfs,
  parseDhcpServers,
  parseGuestProperty,
  parseVBoxVersion,
  vboxState,
} from "./virtualbox-output";
export {
  HyperVDriver,
  hypervDriver,
  hypervOptionSpecs,
  parseHyperVOptions,
  psQuote,
  hypervState,
  type HyperVOptions,
} from "./hyperv.driver";
export { GenericDriver, genericDriver, genericOptionSpecs, parseGenericOptions, type GenericOptions } from "./generic.driver";
export {
  NetnsDriver,
  netnsDriver,
  netnsOptionSpecs,
  parseNetnsOptions,
  NETNS_DATA_MOUNT,
  NETNS_HOST_MARKER,
  type NetnsOptions,
} from "./netns.driver";
export { QemuDriver, qemuDriver, qemuOptionSpecs, parseQemuOptions, type QemuOptions } from "./qemu.driver";
export { chooseAccel, kernelCommandLine, qemuArgs, macAddress, consoleTail, type QemuAccel, type QemuAccelChoice } from "./qemu-plan";
export { GUEST_IMAGE_VERSION, defaultGuestImageDir, locateGuestImage, type GuestImage, type GuestManifest } from "./qemu-image";
export { qemuNetnsName, qemuVethName } from "./qemu-net";
