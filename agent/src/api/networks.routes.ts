/**
 * The Engine API's network endpoints: list, inspect, create, remove, prune, connect and
 * disconnect. User-defined networks are UserNetworks' (agent/src/network); bridge, host and none
 * are the predefined ones and cannot be created, removed or (here) connected to.
 */
import { ConflictError, DomainError, NotSupportedError } from "@flotilla/core";
import { connectContainer, disconnectContainer, networkUsers } from "../containers/container-networks";
import type { ContainerService } from "../containers/container-service";
import type { EndpointConfigBody } from "../containers/create-request";
import type { NetworkPort } from "../containers/network-port";
import type { EventBus } from "../events/event-bus";
import { HostNetwork } from "../network";
import { predefinedNetworks, toDockerNetwork, toOverlayDockerNetwork, type DockerNetwork } from "../network/network-shapes";
import { parseCreateNetwork, PREDEFINED, type CreateNetworkBody } from "../network/user-network-spec";
import type { UserNetworks } from "../network/user-networks";
import { checkFilterKeys, labelMatches, parseFilters, queryBool, readJson, sendEmpty, sendJson } from "./http-util";
import type { Router } from "./router";

export interface NetworkRouteDeps {
  network: NetworkPort | null;
  containers: ContainerService;
  events: EventBus;
  /** When the agent started: the predefined networks' Created. */
  started: string;
}

const LIST_FILTERS = ["name", "id", "label", "driver", "type", "scope", "dangling"];

export function registerNetworkRoutes(router: Router, deps: NetworkRouteDeps): void {
  const { containers, events } = deps;
  const host = deps.network instanceof HostNetwork ? deps.network : null;
  const user = (): UserNetworks => {
    if (!host) throw new NotSupportedError("user-defined networks need bridge networking, which this agent does not have");
    return host.user;
  };
  const containerName = (id: string) => containers.store.find(id)?.name.slice(1) ?? "";
  const predefined = (withContainers: boolean): DockerNetwork[] => {
    const bridge = host && {
      id: host.networkId,
      bridge: host.bridge,
      subnet: host.subnet.cidr,
      gateway: host.gateway,
      created: deps.started,
      endpoints: host.list().filter((e) => e.mode === "bridge"),
    };
    return predefinedNetworks(bridge, containerName, withContainers);
  };
  const all = (withContainers: boolean): DockerNetwork[] => [
    ...predefined(withContainers),
    ...(host ? host.user.list().map((n) => toDockerNetwork(n, withContainers)) : []),
    ...(host
      ? host.overlay.networks().map((n) => toOverlayDockerNetwork(n, host.overlay.members(n.id), containerName, withContainers))
      : []),
  ];
  /** Overlay networks are the control plane's: shown here, changed only through ctl. */
  const refuseOverlay = (n: DockerNetwork, what: string) => {
    if (n.Driver === "overlay")
      throw new NotSupportedError(
        `network ${n.Name} is an overlay network: it is ${what} by the control plane (ctl network ..., ctl service ... --network), not through a node's Engine API`,
        { field: "network" },
      );
  };
  /** Docker's lookup order: full id, name, unique id prefix. */
  const lookup = (ref: string): DockerNetwork => {
    const list = all(true);
    const hit = list.find((n) => n.Id === ref) ?? list.find((n) => n.Name === ref);
    if (hit) return hit;
    const byPrefix = list.filter((n) => n.Id.startsWith(ref));
    if (byPrefix.length === 1) return byPrefix[0]!;
    throw new DomainError("not_found", `network ${ref} not found`, { network: ref });
  };
  const remove = async (ref: string): Promise<DockerNetwork> => {
    const n = lookup(ref);
    refuseOverlay(n, "removed");
    if ((PREDEFINED as readonly string[]).includes(n.Name))
      throw new ConflictError(`${n.Name} is a pre-defined network and cannot be removed`);
    const users = networkUsers(containers.all(), n.Id);
    if (users.length)
      throw new ConflictError(`error while removing network: network ${n.Name} id ${n.Id} is in use by container(s) ${users.join(", ")}`);
    await user().remove(n.Id);
    events.emit("network", "destroy", n.Id, { name: n.Name, type: n.Driver });
    return n;
  };

  router.add("GET", "/networks", ({ res, query }) => {
    const filters = parseFilters(query);
    checkFilterKeys(filters, LIST_FILTERS);
    const is = (key: string, pred: (v: string) => boolean) => !filters.get(key)?.length || filters.get(key)!.some(pred);
    const used = new Set(containers.all().flatMap((c) => (c.networks ?? []).map((n) => n.networkId)));
    const list = all(false).filter(
      (n) =>
        is("name", (v) => n.Name.includes(v)) &&
        is("id", (v) => n.Id.startsWith(v)) &&
        (filters.get("label") ?? []).every((v) => labelMatches(n.Labels, v)) &&
        is("driver", (v) => n.Driver === v) &&
        is("type", (v) => (v === "builtin") === (PREDEFINED as readonly string[]).includes(n.Name)) &&
        is("scope", (v) => v === n.Scope) &&
        is("dangling", (v) => ["true", "1"].includes(v) === (!used.has(n.Id) && !(PREDEFINED as readonly string[]).includes(n.Name))),
    );
    sendJson(res, 200, list);
  });

  router.add("GET", "/networks/:id", ({ res, params }) => {
    sendJson(res, 200, lookup(params.id!));
  });

  router.add("POST", "/networks/create", async ({ req, res }) => {
    const body = await readJson<CreateNetworkBody>(req);
    const plan = parseCreateNetwork(body);
    const n = await user().create(plan);
    events.emit("network", "create", n.id, { name: n.name, type: n.driver });
    sendJson(res, 201, { Id: n.id, Warning: "" });
  });

  router.add("DELETE", "/networks/:id", async ({ res, params }) => {
    await remove(params.id!);
    sendEmpty(res);
  });

  router.add("POST", "/networks/prune", async ({ res, query }) => {
    const filters = parseFilters(query);
    checkFilterKeys(filters, ["label", "label!", "until"]);
    if (filters.get("until")?.length) throw new NotSupportedError("prune filter until is not supported", { field: "filters" });
    const deleted: string[] = [];
    for (const n of host ? host.user.list() : []) {
      if (!(filters.get("label") ?? []).every((l) => labelMatches(n.labels, l))) continue;
      if ((filters.get("label!") ?? []).some((l) => labelMatches(n.labels, l))) continue;
      if (networkUsers(containers.all(), n.id).length || Object.keys(n.endpoints).length) continue;
      await remove(n.id);
      deleted.push(n.name);
    }
    sendJson(res, 200, { NetworksDeleted: deleted });
  });

  router.add("POST", "/networks/:id/connect", async ({ req, res, params }) => {
    const body = await readJson<{ Container?: string; EndpointConfig?: EndpointConfigBody | null }>(req);
    if (!body.Container) throw new DomainError("invalid", "Container is required", { field: "Container" });
    const n = lookup(params.id!);
    refuseOverlay(n, "attached to tasks");
    await connectContainer({ store: containers.store, network: deps.network, events }, n.Name, body.Container, body.EndpointConfig);
    sendEmpty(res, 200);
  });

  router.add("POST", "/networks/:id/disconnect", async ({ req, res, params, query }) => {
    const body = await readJson<{ Container?: string; Force?: boolean }>(req);
    if (!body.Container) throw new DomainError("invalid", "Container is required", { field: "Container" });
    const n = lookup(params.id!);
    refuseOverlay(n, "detached from tasks");
    if ((PREDEFINED as readonly string[]).includes(n.Name))
      throw new NotSupportedError(`disconnecting from the ${n.Name} network is not supported`);
    await disconnectContainer(
      { store: containers.store, network: deps.network, events },
      n.Id,
      body.Container,
      !!body.Force || queryBool(query, "force"),
    );
    sendEmpty(res, 200);
  });
}
