/**
 * docker pause/unpause: the freezer of the container's group (v1 freezer.state, v2
 * cgroup.freeze), waiting until the kernel reports every task frozen or thawed.
 */
import * as fs from "node:fs";
import { join } from "node:path";
import { ConflictError } from "@flotilla/core";
import type { EventBus } from "../events/event-bus";
import { cgroupDir, cgroupOf, readCgroupFile, type CgroupRef } from "./cgroup-files";
import type { ContainerService } from "./container-service";
import { readShimState } from "./shim-client";

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

/** POST /containers/{id}/pause (freeze: true) and /unpause, with Docker's 409s and events. */
export async function pauseContainer(containers: ContainerService, events: EventBus, ref: string, freeze: boolean): Promise<void> {
  const c = containers.get(ref);
  const running = c.state.status === "running" && !containers.isStarting(c.id);
  if (freeze && !running) throw new ConflictError(`Container ${c.id} is not running`);
  if (freeze && c.state.paused) throw new ConflictError(`Container ${c.id} is already paused`);
  if (!freeze && (!running || !c.state.paused)) throw new ConflictError(`Container ${c.id} is not paused`);
  const cg = cgroupOf(readShimState(containers.store.paths(c.id).stateDir));
  if (!cg) throw new ConflictError(`Container ${c.id} is not running`);
  await setFrozen(cg, freeze);
  c.state.paused = freeze;
  await containers.store.save(c);
  events.emit("container", freeze ? "pause" : "unpause", c.id, containers.attributes(c));
}
