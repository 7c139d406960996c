// Small file-system probes for the image store's tests: xattrs (Node has no API for them) and
// which helper commands this host has.
import { execFileSync } from "node:child_process";

/** True when `cmd` is on PATH. */
export function hasCommand(cmd: string): boolean {
  try {
    execFileSync("sh", ["-c", `command -v ${cmd}`], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

/** Reads an xattr without following symlinks (getfattr, else python3); undefined when absent. */
export function readXattr(path: string, name: string): string | undefined {
  try {
    if (hasCommand("getfattr")) {
      return execFileSync("getfattr", ["-h", "--only-values", "-n", name, path], { stdio: ["ignore", "pipe", "ignore"] }).toString();
    }
    return execFileSync(
      "python3",
      ["-c", "import os,sys\nsys.stdout.write(os.getxattr(sys.argv[1], sys.argv[2], follow_symlinks=False).decode())", path, name],
      {
        stdio: ["ignore", "pipe", "ignore"],
      },
    ).toString();
  } catch {
    return undefined;
  }
}
