/**
 * docker pause/unpause: the freezer of the container's group (v1 freezer.state, v2
 * cgroup.freeze), waiting until the kernel reports every task frozen or thawed.
 */
import * as fs from "node:fs";
import { join } from "node:path";
import { cgroupDir, readCgroupFile, type CgroupRef } from "./cgroup-files";

const SETTLE_MS = 5000;

function isFrozen(cg: CgroupRef): boolean {
  if (cg.version === 2) return /^frozen 1$/m.test(readCgroupFile(cg, "unified", "cgroup.events") ?? "");
  return (readCgroupFile(cg, "freezer", "freezer.state") ?? "").trim() === "FROZEN";
}

function isThawed(cg: CgroupRef): boolean {
  if (cg.version === 2) return /^frozen 0$/m.test(readCgroupFile(cg, "unified", "cgroup.events") ?? "frozen 0");
  return (readCgroupFile(cg, "freezer", "freezer.state") ?? "THAWED").trim() === "THAWED";
}

/** Freezes (true) or thaws (false) the group and waits for the kernel to settle. */
export async function setFrozen(cg: CgroupRef, frozen: boolean): Promise<void> {
  const file = cg.version === 2 ? join(cgroupDir(cg, "unified"), "cgroup.freeze") : join(cgroupDir(cg, "freezer"), "freezer.state");
  const value = cg.version === 2 ? (frozen ? "1" : "0") : frozen ? "FROZEN" : "THAWED";
  fs.writeFileSync(file, value);
  const deadline = Date.now() + SETTLE_MS;
  while (!(frozen ? isFrozen(cg) : isThawed(cg))) {
    if (Date.now() > deadline) throw new Error(`the freezer did not settle (${value}) within ${SETTLE_MS} ms`);
    // v1 FREEZING means a task is still in the kernel: write again, as runc does
    if (cg.version === 1 && frozen) fs.writeFileSync(file, value);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** Thaws without waiting (a KILL must reach a frozen container). */
export function thaw(cg: CgroupRef): void {
  const file = cg.version === 2 ? join(cgroupDir(cg, "unified"), "cgroup.freeze") : join(cgroupDir(cg, "freezer"), "freezer.state");
  try {
    fs.writeFileSync(file, cg.version === 2 ? "0" : "THAWED");
  } catch {
    // no group any more
  }
}
