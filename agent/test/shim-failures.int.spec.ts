// The native shim (agent/shim) against the real kernel: starts that fail. Bad input, commands
// that cannot run and cgroups that cannot be made end with the documented exit code and an error
// naming the step, and leave nothing behind. Needs root and busybox-static.
import * as fs from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { boxArgs, cgroupDirs, leftovers, logText, readState, shim } from "./support/shim";
import { isRoot, unifiedV2, useShimSuite } from "./support/shim-suite";

describe.skipIf(!isRoot)("flotilla-shim failures and cleanup", () => {
  const suite = useShimSuite();
  const { box, runToExit } = suite;

  it("bad input fails with exit 125 and an error naming the step, leaving nothing behind", () => {
    const missing = box("missing");
    const r1 = shim([
      "run",
      "--foreground",
      "--id",
      missing.id,
      "--state-dir",
      missing.stateDir,
      "--rootfs",
      join(suite.root, "nope"),
      "--",
      "true",
    ]);
    expect(r1.status).toBe(125);
    expect(r1.stderr).toContain(`rootfs: ${join(suite.root, "nope")}: No such file or directory`);
    expect(readState(missing.stateDir)).toMatchObject({ status: "exited", exitCode: 125, error: expect.stringContaining("rootfs:") });
    expect(leftovers(missing)).toEqual([]);

    const badLayer = box("badlayer");
    const r2 = shim(["run", ...boxArgs(badLayer, `${join(suite.root, "no-layer")}:${suite.lower}`), "--", "true"]); // detached
    expect(r2.status).toBe(125);
    expect(r2.stdout).toBe("");
    expect(r2.stderr).toContain("rootfs: lower layer");
    expect(leftovers(badLayer)).toEqual([]);

    const badMem = box("badmem");
    const r3 = shim(["run", ...boxArgs(badMem, suite.lower), "--memory", "lots", "--", "true"]);
    expect(r3.status).toBe(125);
    expect(r3.stderr).toContain('--memory: invalid size "lots"');
    expect(fs.existsSync(badMem.stateDir)).toBe(false); // refused before anything was made
    expect(leftovers(badMem)).toEqual([]);
  });

  it("a command that cannot be found or executed fails the start with 127 / 126", () => {
    const b = box("enoent");
    const r = shim(["run", ...boxArgs(b, suite.lower), "--", "no-such-command"]);
    expect(r.status).toBe(127);
    expect(r.stderr).toContain('exec: "no-such-command": executable file not found in $PATH');
    expect(readState(b.stateDir)).toMatchObject({ status: "exited", exitCode: 127, pid: 0 });
    expect(leftovers(b)).toEqual([]);

    const c = box("eacces");
    const r2 = runToExit(c, [], ["/etc/passwd"]);
    expect(r2.status).toBe(126);
    expect(r2.stderr).toContain('exec: "/etc/passwd": Permission denied');
    expect(leftovers(c)).toEqual([]);
  });

  it("a cgroup that already exists is refused and left alone", () => {
    const b = box("taken");
    const dirs = cgroupDirs(b.id);
    fs.mkdirSync(dirs[0]!, { recursive: true });
    try {
      const r = shim(["run", ...boxArgs(b, suite.lower), "--", "true"]);
      expect(r.status).toBe(125);
      expect(r.stderr).toMatch(/cgroup \w+: mkdir .*: File exists/);
      expect(fs.existsSync(dirs[0]!)).toBe(true);
      for (const d of dirs.slice(1)) expect(fs.existsSync(d)).toBe(false);
    } finally {
      fs.rmdirSync(dirs[0]!);
    }
  });

  it.skipIf(!unifiedV2)(
    "cgroup v2 code path on the unified hierarchy: created, joined (cgroupns), removed; missing controllers refused",
    () => {
      const b = box("v2");
      const opts = ["--cgroup-root", "/sys/fs/cgroup/unified"];
      const r = runToExit(b, opts, ["sh", "-c", "cat /proc/self/cgroup"]);
      expect(r.status).toBe(0);
      expect(r.state).toMatchObject({ cgroupVersion: 2, cgroup: `flotilla/${b.id}` });
      expect(logText(b.log)).toContain("0::/\n"); // the cgroup namespace is rooted at the container's group
      expect(leftovers(b, { cgroupRoot: "/sys/fs/cgroup/unified" })).toEqual([]);

      const c = box("v2-mem");
      const r2 = shim(["run", ...boxArgs(c, suite.lower), ...opts, "--memory", "64m", "--", "true"]);
      expect(r2.status).toBe(125);
      expect(r2.stderr).toContain("cgroup memory: controller not available in /sys/fs/cgroup/unified/cgroup.controllers");
      expect(leftovers(c, { cgroupRoot: "/sys/fs/cgroup/unified" })).toEqual([]);
    },
  );
});
