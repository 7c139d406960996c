// The virtualbox driver's typed options, shared by the driver (which parses them) and the create
// flow (which spends them), so neither file imports the other.
import type { Cidr } from "./net";

export const VBOX_NIC_TYPES = ["virtio", "82540EM", "82543GC", "82545EM", "Am79C970A", "Am79C973"] as const;
export type VBoxNicType = (typeof VBOX_NIC_TYPES)[number];
export const VBOX_PROMISC_MODES = ["deny", "allow-vms", "allow-all"] as const;
export type VBoxPromiscMode = (typeof VBOX_PROMISC_MODES)[number];

export interface VirtualBoxOptions {
  cpuCount: number;
  memoryMB: number;
  diskSizeMB: number;
  /** The Flotilla guest image (directory or disk.vmdk), a local path or cached URL; undefined: the cached image of this version. */
  imageUrl?: string;
  hostonlyCidr: Cidr;
  hostonlyNicType: VBoxNicType;
  hostonlyNicPromisc: VBoxPromiscMode;
  natNicType: VBoxNicType;
  /** "HOSTDIR:NAME"; undefined: the platform's users directory as "hosthome", when it exists. */
  shareFolder?: string;
  noShare: boolean;
}
