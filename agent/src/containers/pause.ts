// docker pause/unpause: the freezer (freezer.ts) applied to a container, with Docker's 409s and events.
import { ConflictError } from "@flotilla/core";
import type { EventBus } from "../events/event-bus";
import { cgroupOf } from "./cgroup-files";
import type { ContainerService } from "./container-service";
import { setFrozen } from "./freezer";
import { readShimState } from "./shim-client";

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
