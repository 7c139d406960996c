// The Flotilla guest image the qemu driver boots (built by scripts/build-guest-image.sh): where it
// is cached, what it holds, and reading its manifest.
import { readFile, stat } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { InvalidError } from "@flotilla/core";

/** Must equal `version=` in scripts/build-guest-image.sh (a unit test checks). */
export const GUEST_IMAGE_VERSION = "3";

export function guestCacheRoot(): string {
  return process.env.FLOTILLA_GUEST_CACHE ?? "/var/cache/flotilla";
}

/** The cached image directory of this version: /var/cache/flotilla/guest-<version>. */
export function defaultGuestImageDir(): string {
  return join(guestCacheRoot(), `guest-${GUEST_IMAGE_VERSION}`);
}

export interface GuestManifest {
  version: string;
  kernel: string;
  diskMb: number;
  minMemoryMb: number;
  buildSeconds?: number;
}

export interface GuestImage {
  dir: string;
  disk: string;
  kernel: string;
  initrd: string;
  manifest: GuestManifest;
  /** The disk image's virtual size in MB (the root file system's size). */
  diskMb: number;
}

const FLAG = "qemu-image";

/**
 * Finds a guest image: `value` is its directory (with manifest.json, disk.qcow2, vmlinuz,
 * initrd.img, and optionally vmlinux) or its disk.qcow2; nothing given means the cached image of this version.
 * InvalidError naming --qemu-image when anything is missing.
 */
export async function locateGuestImage(value: string | undefined): Promise<GuestImage> {
  const given = value ?? defaultGuestImageDir();
  const st = await stat(given).catch(() => undefined);
  const dir = st?.isFile() ? dirname(given) : given;
  const disk = st?.isFile() ? given : join(dir, "disk.qcow2");
  const missing = async (p: string) => !(await stat(p).catch(() => undefined))?.isFile();
  if (!st) {
    throw new InvalidError(
      value === undefined
        ? `--${FLAG} not given and the guest image ${given} is not built yet: run scripts/build-guest-image.sh (as root) or pass --${FLAG} DIR`
        : `--${FLAG} ${value}: no such file or directory`,
      { field: FLAG },
    );
  }
  for (const p of [disk, join(dir, "vmlinuz"), join(dir, "initrd.img"), join(dir, "manifest.json")]) {
    if (await missing(p))
      throw new InvalidError(`--${FLAG} ${given}: ${basename(p)} is missing (not a Flotilla guest image?)`, { field: FLAG });
  }
  let manifest: GuestManifest;
  try {
    manifest = JSON.parse(await readFile(join(dir, "manifest.json"), "utf8")) as GuestManifest;
  } catch (e) {
    throw new InvalidError(`--${FLAG} ${given}: manifest.json is unreadable: ${(e as Error).message}`, { field: FLAG });
  }
  // The uncompressed kernel, when the image has one, boots through its PVH entry point: no
  // decompression in the guest (seconds under TCG).
  const kernel = (await missing(join(dir, "vmlinux"))) ? join(dir, "vmlinuz") : join(dir, "vmlinux");
  return { dir, disk, kernel, initrd: join(dir, "initrd.img"), manifest, diskMb: manifest.diskMb };
}
