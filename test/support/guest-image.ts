// The Flotilla guest image for tests that boot VMs: built on first use (scripts/build-guest-image.sh,
// a few minutes on a fresh machine, from Debian's mirror) and cached outside the clone.
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { join, resolve } from "node:path";
import { defaultGuestImageDir } from "@flotilla/drivers";

const repo = resolve(__dirname, "../..");

/** Whether this host can boot test VMs at all (root, qemu, debootstrap for the image). */
export function canBootVms(): boolean {
  if (process.getuid?.() !== 0) return false;
  const have = (tool: string) => {
    try {
      execFileSync("sh", ["-c", `command -v ${tool}`], { stdio: "ignore" });
      return true;
    } catch {
      return false;
    }
  };
  return have("qemu-system-x86_64") && have("qemu-img") && (existsSync(join(defaultGuestImageDir(), "manifest.json")) || have("debootstrap"));
}

/** The cached guest image's directory, built first when missing. */
export function ensureGuestImage(): string {
  const dir = defaultGuestImageDir();
  if (!existsSync(join(dir, "manifest.json"))) {
    execFileSync("bash", [join(repo, "scripts/build-guest-image.sh")], { stdio: ["ignore", "ignore", "inherit"] });
  }
  return dir;
}
