// A minimal root filesystem for shim tests and benchmarks, made from the host's busybox-static:
//
//   bin/busybox + one symlink per applet (`busybox --list`), etc/passwd and etc/group with root
//   and nobody (65534), empty proc/ sys/ dev/ (mount points), tmp/ (1777), root/.
//
// Built once and cached under os.tmpdir(), keyed by the busybox binary and a layout version, so
// concurrent workers share it. Treat it as read-only: use it as an overlay lower layer (or with
// --readonly-rootfs) so no test writes into the cache.
import { execFileSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import * as fs from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const LAYOUT_VERSION = "1";
const DEFAULT_BUSYBOX = "/bin/busybox";

export interface BusyboxRootfsOptions {
  /** The static busybox binary to copy (default /bin/busybox from busybox-static). */
  readonly busybox?: string;
  /** Where cached rootfs directories live (default os.tmpdir()). */
  readonly cacheDir?: string;
}

/** Returns the path of a cached busybox rootfs, building it on first use. */
export function busyboxRootfs(options: BusyboxRootfsOptions = {}): string {
  const busybox = options.busybox ?? DEFAULT_BUSYBOX;
  if (!fs.existsSync(busybox)) {
    throw new Error(`busybox rootfs: ${busybox} not found (apt-get install busybox-static)`);
  }
  const key = createHash("sha256").update(LAYOUT_VERSION).update(fs.readFileSync(busybox)).digest("hex").slice(0, 16);
  const dir = join(options.cacheDir ?? tmpdir(), `flotilla-busybox-rootfs-${key}`);
  if (fs.existsSync(join(dir, ".complete"))) return dir;

  // Build aside and rename into place: a reader never sees a half-built tree, and of two
  // concurrent builders one wins the rename and the other throws its copy away.
  const staging = `${dir}.${process.pid}.${randomBytes(4).toString("hex")}`;
  try {
    build(staging, busybox);
    fs.renameSync(staging, dir);
  } catch (err) {
    fs.rmSync(staging, { recursive: true, force: true });
    if (!fs.existsSync(join(dir, ".complete"))) throw err;
  }
  return dir;
}

function build(root: string, busybox: string): void {
  for (const d of ["bin", "etc", "proc", "sys", "dev", "root", "tmp"]) fs.mkdirSync(join(root, d), { recursive: true });
  fs.chmodSync(join(root, "tmp"), 0o1777);
  fs.chmodSync(join(root, "root"), 0o700);
  fs.copyFileSync(busybox, join(root, "bin", "busybox"));
  fs.chmodSync(join(root, "bin", "busybox"), 0o755);
  const applets = execFileSync(busybox, ["--list"], { encoding: "utf8" }).split("\n").filter(Boolean);
  for (const applet of applets) {
    if (applet === "busybox" || applet.includes("/")) continue;
    fs.symlinkSync("busybox", join(root, "bin", applet));
  }
  fs.writeFileSync(join(root, "etc", "passwd"), "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n");
  fs.writeFileSync(join(root, "etc", "group"), "root:x:0:\ntty:x:5:\nnobody:x:65534:\n");
  fs.writeFileSync(join(root, ".complete"), "");
}
