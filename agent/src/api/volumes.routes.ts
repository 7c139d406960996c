/** The Engine API's volume endpoints over VolumeStore; in-use checks ask the containers. */
import type { ContainerService } from "../containers/container-service";
import type { EventBus } from "../events/event-bus";
import type { CreateVolumeRequest, VolumeStore } from "../volumes/volume-store";
import { checkFilterKeys, labelMatches, parseFilters, queryBool, readJson, sendEmpty, sendJson } from "./http-util";
import type { Router } from "./router";

export interface VolumeRouteDeps {
  volumes: VolumeStore;
  containers: ContainerService;
  events: EventBus;
}

export function registerVolumeRoutes(router: Router, deps: VolumeRouteDeps): void {
  const { volumes, containers, events } = deps;

  router.add("POST", "/volumes/create", async ({ req, res }) => {
    const body = await readJson<CreateVolumeRequest>(req);
    const { volume, created } = await volumes.create(body);
    if (created) events.emit("volume", "create", volume.Name, { driver: "local" });
    sendJson(res, 201, volume);
  });

  router.add("GET", "/volumes", async ({ res, query }) => {
    const filters = parseFilters(query);
    checkFilterKeys(filters, ["name", "label", "dangling", "driver"]);
    let list = await volumes.list();
    for (const n of filters.get("name") ?? []) list = list.filter((v) => v.Name.includes(n));
    for (const l of filters.get("label") ?? []) list = list.filter((v) => labelMatches(v.Labels, l));
    const dangling = filters.get("dangling")?.[0];
    if (dangling !== undefined)
      list = list.filter((v) => (containers.store.volumeUsers(v.Name).length === 0) === (dangling === "true" || dangling === "1"));
    for (const d of filters.get("driver") ?? []) list = list.filter((v) => v.Driver === d);
    sendJson(res, 200, { Volumes: list, Warnings: [] });
  });

  // API 1.41 semantics: every volume no container references (named ones too).
  router.add("POST", "/volumes/prune", async ({ res, query }) => {
    const filters = parseFilters(query);
    checkFilterKeys(filters, ["label", "label!", "all"]);
    const deleted: string[] = [];
    for (const v of await volumes.list()) {
      if (containers.store.volumeUsers(v.Name).length) continue;
      if (!(filters.get("label") ?? []).every((l) => labelMatches(v.Labels, l))) continue;
      if ((filters.get("label!") ?? []).some((l) => labelMatches(v.Labels, l))) continue;
      if (await volumes.remove(v.Name, [], true)) {
        events.emit("volume", "destroy", v.Name, { driver: "local" });
        deleted.push(v.Name);
      }
    }
    sendJson(res, 200, { VolumesDeleted: deleted, SpaceReclaimed: 0 });
  });

  router.add("GET", "/volumes/:name", async ({ res, params }) => {
    sendJson(res, 200, await volumes.inspect(params.name!));
  });

  router.add("DELETE", "/volumes/:name", async ({ res, params, query }) => {
    if (await volumes.remove(params.name!, containers.store.volumeUsers(params.name!), queryBool(query, "force"))) {
      events.emit("volume", "destroy", params.name!, { driver: "local" });
    }
    sendEmpty(res);
  });
}
