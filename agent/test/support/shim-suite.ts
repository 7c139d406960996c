// The setup every shim integration spec shares (shim-*.int.spec.ts): build the shim and a busybox
// lower layer once per file, give each test its own container directories, and stop and remove
// whatever a file started, even when a test failed half-way. Kept apart from ./shim, which the
// benchmarks import outside vitest.
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll } from "vitest";
import { busyboxRootfs } from "./busybox-rootfs";
import { boxArgs, buildShim, newBox, readState, shim, type Box } from "./shim";

export const RFC3339_NANO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$/;
export const DOCKER_DEFAULT_CAPS = "00000000a80425fb";
export const isRoot = process.getuid?.() === 0;
export const hostIsV2 = fs.existsSync("/sys/fs/cgroup/cgroup.controllers");
export const unifiedV2 = !hostIsV2 && fs.existsSync("/sys/fs/cgroup/unified/cgroup.controllers");

/** Host-side cgroup file of a running container, on v1 or v2. */
export function cgroupFile(id: string, v1: [controller: string, file: string], v2: string): string {
  return hostIsV2 ? join("/sys/fs/cgroup/flotilla", id, v2) : join("/sys/fs/cgroup", v1[0], "flotilla", id, v1[1]);
}

export interface ShimSuite {
  /** Temp directory holding every container directory of the file (set in beforeAll). */
  readonly root: string;
  /** The busybox lower layer (set in beforeAll). */
  readonly lower: string;
  /** New container directories, stopped and removed after all tests of the file. */
  box(name: string): Box;
  /** Runs a container to completion (--foreground) and returns the shim's result and the state. */
  runToExit(b: Box, extra: readonly string[], cmd: readonly string[]): ReturnType<typeof shim> & { state?: ReturnType<typeof readState> };
}

/** Registers the file's beforeAll/afterAll; call inside the top-level describe. */
export function useShimSuite(): ShimSuite {
  const started: Box[] = [];
  const suite = {
    root: "",
    lower: "",
    box(name: string): Box {
      const b = newBox(suite.root, name);
      started.push(b);
      return b;
    },
    runToExit(b: Box, extra: readonly string[], cmd: readonly string[]) {
      const r = shim(["run", "--foreground", ...boxArgs(b, suite.lower), ...extra, "--", ...cmd]);
      return { ...r, state: fs.existsSync(join(b.stateDir, "state.json")) ? readState(b.stateDir) : undefined };
    },
  };

  beforeAll(() => {
    buildShim();
    suite.lower = busyboxRootfs();
    suite.root = fs.mkdtempSync(join(tmpdir(), "flotilla-shim-"));
  });

  afterAll(() => {
    // a failed test may leave a container running: stop it before removing its directories
    for (const b of started) {
      if (fs.existsSync(join(b.stateDir, "control"))) shim(["kill", "--state-dir", b.stateDir, "KILL"]);
    }
    const deadline = Date.now() + 5_000;
    while (started.some((b) => fs.existsSync(join(b.stateDir, "control"))) && Date.now() < deadline) execFileSync("sleep", ["0.05"]);
    if (suite.root) fs.rmSync(suite.root, { recursive: true, force: true });
  });

  return suite;
}
