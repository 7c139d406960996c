/**
 * What an agent finds of its containers when it starts: records of containers whose shim still
 * runs are watched again; those whose shim is gone are marked exited with what the shim
 * recorded (or why nothing was), and half-removed ones finish their removal.
 */
import type { ContainerRecord } from "./container-types";
import { stateAfterExit } from "./container-state";
import type { ContainerStore } from "./container-store";
import type { ExitMonitor } from "./exit-monitor";
import { readShimState, shimAlive } from "./shim-client";

/**
 * Loads the records and re-adopts running containers (watched by `monitor`); `onDied` hears of
 * each container found exited. Returns the IDs of the containers still running.
 */
export async function readopt(store: ContainerStore, monitor: ExitMonitor, onDied: (c: ContainerRecord) => void): Promise<string[]> {
  const records = await store.load();
  const live: string[] = [];
  for (const c of records) {
    if (c.state.status === "removing") {
      await store.delete(c);
      continue;
    }
    if (c.state.status !== "running" && c.state.status !== "restarting") continue;
    const { stateDir } = store.paths(c.id);
    const s = readShimState(stateDir);
    const same = s && s.shimPid === c.state.shimPid;
    if (c.state.status === "running" && same && s.status === "running" && shimAlive(stateDir)) {
      live.push(c.id);
      monitor.watch(c.id, stateDir);
      continue;
    }
    c.state = stateAfterExit(c.state, same && s.status === "exited" ? s : null, "the container's shim was gone when the agent started");
    await store.save(c);
    onDied(c);
  }
  return live;
}
