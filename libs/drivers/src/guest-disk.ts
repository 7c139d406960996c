// The Flotilla guest image in the disk formats other hypervisors attach (scripts/build-guest-image.sh
// converts its disk with qemu-img: disk.vmdk for VirtualBox, disk.vhdx for Hyper-V), and how
// `--<driver>-boot2docker-url` names it.
import { readFile, stat } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { InvalidError } from "@flotilla/core";
import { GUEST_IMAGE_VERSION, guestCacheRoot, type GuestManifest } from "./qemu-image";

export type VmDiskFormat = "vmdk" | "vhdx";

/** The guest image's disk in one format, with the image's manifest. */
export interface VmDisk {
  /** The image directory (manifest.json beside the disk). */
  dir: string;
  /** The disk file in the wanted format. */
  disk: string;
  manifest: GuestManifest;
}

/**
 * Finds the guest image's `format` disk for `--<flag>`: the image directory, its disk file, a
 * file:// URL of either, or a URL already placed in the cache root under its file name (nothing
 * is downloaded); nothing given means the cached image of this version under `cacheRoot`.
 * InvalidError naming the flag when it is not a Flotilla guest image (a boot2docker ISO included).
 */
export async function locateVmDisk(
  flag: string,
  value: string | undefined,
  format: VmDiskFormat,
  cacheRoot = guestCacheRoot(),
): Promise<VmDisk> {
  const field = { field: flag };
  let given: string;
  if (value === undefined) {
    given = join(cacheRoot, `guest-${GUEST_IMAGE_VERSION}`);
  } else if (/^file:\/\//i.test(value)) {
    given = decodeURIComponent(new URL(value).pathname);
  } else if (/^[a-z][a-z0-9+.-]*:\/\//i.test(value)) {
    given = join(cacheRoot, basename(new URL(value).pathname));
    if (!(await stat(given).catch(() => undefined))) {
      throw new InvalidError(
        `--${flag} ${value}: not in the image cache (${given}); images are not downloaded at run time: fetch it to that path, or pass a local path`,
        field,
      );
    }
  } else {
    given = value;
  }
  if (/\.iso$/i.test(given)) {
    throw new InvalidError(
      `--${flag} ${value ?? given}: boot2docker-style ISOs are not booted; pass a Flotilla guest image (its directory or its disk.${format}, made by scripts/build-guest-image.sh)`,
      field,
    );
  }
  const st = await stat(given).catch(() => undefined);
  if (!st) {
    throw new InvalidError(
      value === undefined
        ? `--${flag} not given and the guest image ${given} is not built yet: run scripts/build-guest-image.sh (as root) or pass --${flag} DIR`
        : `--${flag} ${value}: no such file or directory`,
      field,
    );
  }
  const dir = st.isDirectory() ? given : dirname(given);
  const disk = st.isDirectory() ? join(given, `disk.${format}`) : given;
  if (!disk.endsWith(`.${format}`)) {
    throw new InvalidError(
      `--${flag} ${value ?? given}: not a .${format} disk; pass the guest image's directory or its disk.${format}`,
      field,
    );
  }
  if (!(await stat(disk).catch(() => undefined))?.isFile()) {
    throw new InvalidError(`--${flag} ${value ?? given}: ${basename(disk)} is missing (not a Flotilla guest image?)`, field);
  }
  let manifest: GuestManifest;
  try {
    manifest = JSON.parse(await readFile(join(dir, "manifest.json"), "utf8")) as GuestManifest;
  } catch (e) {
    throw new InvalidError(
      `--${flag} ${value ?? given}: manifest.json beside the disk is missing or unreadable: ${(e as Error).message}`,
      field,
    );
  }
  return { dir, disk, manifest };
}

/** InvalidError naming the driver's flags when the disk or memory asked for is below what the image needs. */
export function checkGuestFits(driver: string, image: VmDisk, diskSizeMB: number, memoryMB: number): void {
  if (diskSizeMB < image.manifest.diskMb) {
    throw new InvalidError(`--${driver}-disk-size ${diskSizeMB} MB is smaller than the guest image (${image.manifest.diskMb} MB)`, {
      field: `${driver}-disk-size`,
    });
  }
  if (memoryMB < image.manifest.minMemoryMb) {
    throw new InvalidError(`--${driver}-memory ${memoryMB} MB is below the guest image's minimum of ${image.manifest.minMemoryMb} MB`, {
      field: `${driver}-memory`,
    });
  }
}
