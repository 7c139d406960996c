/**
 * `docker network connect/disconnect`: a container's user networks changed, live when it runs
 * (an interface plugged or removed in its namespace), in its record either way, so the next
 * start attaches what the record says; and what a container's exit lets go of.
 */
import { ConflictError, DomainError, InvalidError, NotSupportedError } from "@flotilla/core";
import type { EventBus } from "../events/event-bus";
import type { ContainerStore } from "./container-store";
import type { ContainerRecord } from "./container-types";
import { parseEndpointConfig, type EndpointConfigBody } from "./create-request";
import type { NetworkPort } from "./network-port";

export interface ContainerNetworksDeps {
  store: ContainerStore;
  network: NetworkPort | null;
  events: EventBus;
}

function userNetworks(deps: ContainerNetworksDeps) {
  const user = deps.network?.user;
  if (!user) throw new NotSupportedError("user-defined networks need bridge networking, which this agent does not have");
  return user;
}

function lookup(deps: ContainerNetworksDeps, ref: string): { id: string; name: string } {
  const n = userNetworks(deps).find(ref);
  if (!n) throw new DomainError("not_found", `network ${ref} not found`, { network: ref });
  return n;
}

/** POST /networks/{id}/connect. */
export async function connectContainer(
  deps: ContainerNetworksDeps,
  networkRef: string,
  containerRef: string,
  cfg: EndpointConfigBody | null | undefined,
): Promise<ContainerRecord> {
  if (["bridge", "host", "none", "default"].includes(networkRef)) {
    throw new NotSupportedError(
      `connecting a container to the ${networkRef} network is not supported: connect it to a user-defined network`,
      { field: "network" },
    );
  }
  const n = lookup(deps, networkRef);
  const c = deps.store.get(containerRef);
  if (c.networkMode === "host" || c.networkMode === "none") {
    throw new InvalidError(`container ${c.name.slice(1)} uses the ${c.networkMode} network and cannot be connected to any other network`, {
      field: "Container",
    });
  }
  const networks = (c.networks ??= []);
  if (networks.some((x) => x.networkId === n.id))
    throw new ConflictError(`endpoint with name ${c.name.slice(1)} already exists in network ${n.name}`);
  const request = { networkId: n.id, name: n.name, ...parseEndpointConfig(cfg, "EndpointConfig") };
  const user = userNetworks(deps);
  if (c.state.status === "running" && c.network?.netnsPath) {
    await user.allocate(c.id, c.name.slice(1), [request], c.networkMode === "user" ? 0 : 1);
    try {
      c.network.user = await user.plug(c.id, c.network.netnsPath, false);
    } catch (e) {
      await user.release(c.id, n.id).catch(() => undefined);
      throw e;
    }
  }
  networks.push(request);
  await deps.store.save(c);
  deps.events.emit("network", "connect", n.id, { container: c.id, name: n.name, type: "bridge" });
  return c;
}

/** POST /networks/{id}/disconnect. */
export async function disconnectContainer(
  deps: ContainerNetworksDeps,
  networkRef: string,
  containerRef: string,
  force: boolean,
): Promise<void> {
  const n = lookup(deps, networkRef);
  const c = deps.store.find(containerRef);
  if (!c) {
    // A container that is gone may have left its endpoint behind (force, as in Docker).
    if (force) await userNetworks(deps).release(containerRef, n.id);
    else throw new DomainError("not_found", `No such container: ${containerRef}`, { container: containerRef });
    return;
  }
  const networks = c.networks ?? [];
  const i = networks.findIndex((x) => x.networkId === n.id);
  if (i < 0) throw new ConflictError(`container ${c.name.slice(1)} is not connected to network ${n.name}`);
  const running = c.state.status === "running";
  if (running && c.networkMode === "user" && i === 0) {
    throw new NotSupportedError(`disconnecting a running container from its primary network (${n.name}) is not supported: stop it first`, {
      field: "Container",
    });
  }
  if (running) {
    await userNetworks(deps).release(c.id, n.id);
    if (c.network?.user) c.network.user = c.network.user.filter((u) => u.networkId !== n.id);
  }
  networks.splice(i, 1);
  await deps.store.save(c);
  deps.events.emit("network", "disconnect", n.id, { container: c.id, name: n.name, type: "bridge" });
}

/** Names of the containers (any state) connected to a network: they keep it from being removed. */
export function networkUsers(all: readonly ContainerRecord[], networkId: string): string[] {
  return all.filter((c) => c.networks?.some((x) => x.networkId === networkId)).map((c) => c.name.slice(1));
}

/**
 * At a container's exit: its bridge endpoint detached, and its user and overlay interfaces
 * released. Each failure is logged, not thrown: the exit is recorded whatever the network says.
 */
export async function releaseNetworks(network: NetworkPort | null, c: ContainerRecord, log: (msg: string) => void): Promise<void> {
  if ((c.networkMode !== "bridge" && c.networkMode !== "user") || !network) return;
  await network.detach(c.id).catch((e) => log(`network detach ${c.id}: ${(e as Error).message}`));
  if (!c.networks?.length) return;
  await network.user?.release(c.id).catch((e) => log(`network release ${c.id}: ${(e as Error).message}`));
  if (c.networks.some((n) => n.driver === "overlay"))
    await network.overlay?.release(c.id).catch((e) => log(`overlay release ${c.id}: ${(e as Error).message}`));
}
