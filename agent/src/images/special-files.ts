/**
 * The two file-system operations Node has no API for: mknod (overlay whiteouts are character
 * devices 0/0; layers may carry devices and FIFOs) and setting extended attributes (overlay's
 * opaque marker `trusted.overlay.opaque=y`, file capabilities from layers).
 *
 * We shell out instead of adding a native addon: mknod comes from coreutils, which every host
 * has; xattrs go through `setfattr --restore` (Debian package `attr`) in one process per layer,
 * or, where attr is missing, through python3's os.setxattr. Both need root for `trusted.*`,
 * which the agent is.
 */
import { execFile, spawn } from "node:child_process";
import { promisify } from "node:util";
import { NotSupportedError } from "@flotilla/core";

const run = promisify(execFile);

export const OVERLAY_OPAQUE_XATTR = "trusted.overlay.opaque";

export type XattrTool = "setfattr" | "python3";

export interface XattrItem {
  /** Relative to the root passed to writeXattrs; "" is the root itself. */
  path: string;
  name: string;
  value: Buffer;
}

let detected: Promise<XattrTool> | undefined;

/** Finds a way to write xattrs on this host, once; NotSupportedError says what to install. */
export function detectXattrTool(): Promise<XattrTool> {
  detected ??= (async () => {
    for (const [tool, args] of [
      ["setfattr", ["--version"]],
      ["python3", ["-c", "import os; os.setxattr"]],
    ] as const) {
      try {
        await run(tool, [...args]);
        return tool;
      } catch {
        // Try the next one.
      }
    }
    throw new NotSupportedError("cannot write extended attributes: install setfattr (Debian package attr) or python3");
  })();
  return detected;
}

/** getfattr's dump escaping: anything outside a safe set as a backslash and three octal digits. */
function escapeDumpPath(path: string): string {
  let out = "";
  for (const byte of Buffer.from(path || ".", "utf8")) {
    const c = String.fromCharCode(byte);
    out += /[A-Za-z0-9._/+@%:,-]/.test(c) ? c : `\\${byte.toString(8).padStart(3, "0")}`;
  }
  return out;
}

/**
 * Sets all `items` below `root` without following symlinks, in one helper process. With
 * `bestEffort`, items the file system refuses are skipped and the rest still set (both helpers
 * carry on past a failure); without it any failure rejects.
 */
export async function writeXattrs(root: string, items: readonly XattrItem[], tool?: XattrTool, bestEffort = false): Promise<void> {
  if (items.length === 0) return;
  const use = tool ?? (await detectXattrTool());
  try {
    if (use === "setfattr") {
      const dump = items.map((i) => `# file: ${escapeDumpPath(i.path)}\n${i.name}=0x${i.value.toString("hex")}\n`).join("\n");
      await feed("setfattr", ["-h", "--restore=-"], root, dump);
    } else {
      const script = [
        "import json, os, sys, base64",
        "failed = False",
        "for i in json.load(sys.stdin):",
        "    try:",
        "        os.setxattr(i['path'] or '.', i['name'], base64.b64decode(i['value']), follow_symlinks=False)",
        "    except OSError as e:",
        "        failed = True",
        "        print(f\"{i['path']}: {i['name']}: {e.strerror}\", file=sys.stderr)",
        "sys.exit(1 if failed else 0)",
      ].join("\n");
      const json = JSON.stringify(items.map((i) => ({ path: i.path, name: i.name, value: i.value.toString("base64") })));
      await feed("python3", ["-c", script], root, json);
    }
  } catch (e) {
    if (!bestEffort) throw e;
  }
}

/** Runs `cmd` in `cwd` with `input` on stdin; rejects with its stderr on failure. */
function feed(cmd: string, args: string[], cwd: string, input: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd, stdio: ["pipe", "ignore", "pipe"] });
    let stderr = "";
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    child.once("error", reject);
    child.once("close", (code) => (code === 0 ? resolve() : reject(new Error(`${cmd} failed (${code}): ${stderr.trim()}`))));
    child.stdin.end(input);
  });
}

/** Creates a character or block device or a FIFO. `mode` is the permission bits. */
export async function mknod(path: string, kind: "c" | "b" | "p", mode: number, major = 0, minor = 0): Promise<void> {
  const args = ["-m", (mode & 0o7777).toString(8), "--", path, kind];
  if (kind !== "p") args.push(String(major), String(minor));
  try {
    await run("mknod", args);
  } catch (e) {
    const err = e as { stderr?: string; message: string };
    throw new Error(`mknod ${path}: ${(err.stderr ?? err.message).trim()}`, { cause: e });
  }
}
