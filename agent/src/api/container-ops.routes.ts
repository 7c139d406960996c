/**
 * Container endpoints beyond the lifecycle: top, stats (stream and one-shot), pause/unpause,
 * rename, update, diff. docker cp and export are in archive.routes.ts.
 */
import { ConflictError } from "@flotilla/core";
import { cgroupOf, cgroupPids } from "../containers/cgroup-files";
import type { ContainerService } from "../containers/container-service";
import { readShimState } from "../containers/shim-client";
import { emptyStats, sampleStats, type StatsJson } from "../containers/stats";
import { filterPs, runPs } from "../containers/top";
import { pauseContainer } from "../containers/pause";
import { diffUpper, renameContainer, updateContainer, type UpdateBody } from "../containers/container-update";
import type { ImageStore } from "../images";
import type { EventBus } from "../events/event-bus";
import { queryBool, readJson, sendEmpty, sendJson } from "./http-util";
import type { Router } from "./router";

export interface ContainerOpsDeps {
  containers: ContainerService;
  images: ImageStore;
  events: EventBus;
}

/** Between two samples of a stream, as dockerd's collector. */
const STATS_INTERVAL_MS = 1000;

export function registerContainerOpsRoutes(router: Router, deps: ContainerOpsDeps): void {
  const { containers } = deps;
  const running = (ref: string) => {
    const c = containers.get(ref);
    const s = c.state.status === "running" ? readShimState(containers.store.paths(c.id).stateDir) : null;
    const cg = cgroupOf(s);
    return { c, s, cg: s?.status === "running" ? cg : null };
  };

  router.add("GET", "/containers/:id/top", async ({ res, params, query }) => {
    const { c, cg } = running(params.id!);
    if (!cg) throw new ConflictError(`Container ${c.id} is not running`);
    const output = await runPs(query.get("ps_args") ?? "");
    sendJson(res, 200, filterPs(output, new Set(cgroupPids(cg))));
  });

  router.add("GET", "/containers/:id/stats", async ({ res, params, query }) => {
    const ref = params.id!;
    const first = running(ref);
    const stream = queryBool(query, "stream", true);
    const oneShot = queryBool(query, "one-shot");
    let pre: { read: string; cpu: StatsJson["cpu_stats"] } | null = null;
    const sample = (): StatsJson | null => {
      const c = containers.store.find(first.c.id);
      if (!c) return null; // removed: the stream ends
      const { cg, s } = running(c.id);
      if (!cg || !s) return emptyStats(c.name, c.id);
      const st = sampleStats(cg, s.pid, c.name, c.id, pre);
      pre = { read: st.read, cpu: st.cpu_stats };
      return st;
    };
    if (!stream) {
      // Without one-shot, dockerd fills precpu_stats from a sample one interval earlier.
      if (!oneShot && first.cg) {
        sample();
        await new Promise((r) => setTimeout(r, STATS_INTERVAL_MS));
      }
      sendJson(res, 200, sample() ?? emptyStats(first.c.name, first.c.id));
      return;
    }
    res.writeHead(200, { "Content-Type": "application/json" });
    let closed = false;
    res.on("close", () => (closed = true));
    while (!closed) {
      const st = sample();
      if (!st) break;
      res.write(JSON.stringify(st) + "\n");
      await new Promise((r) => setTimeout(r, STATS_INTERVAL_MS));
    }
    res.end();
  });

  router.add("POST", "/containers/:id/pause", async ({ res, params }) => {
    await pauseContainer(containers, deps.events, params.id!, true);
    sendEmpty(res);
  });

  router.add("POST", "/containers/:id/unpause", async ({ res, params }) => {
    await pauseContainer(containers, deps.events, params.id!, false);
    sendEmpty(res);
  });

  router.add("POST", "/containers/:id/rename", async ({ res, params, query }) => {
    const { c, oldName } = await renameContainer(containers, params.id!, query.get("name") ?? "");
    deps.events.emit("container", "rename", c.id, { ...containers.attributes(c), oldName });
    sendEmpty(res);
  });

  router.add("POST", "/containers/:id/update", async ({ req, res, params }) => {
    const body = await readJson<UpdateBody>(req);
    await updateContainer(containers, params.id!, body);
    const c = containers.get(params.id!);
    deps.events.emit("container", "update", c.id, containers.attributes(c));
    sendJson(res, 200, { Warnings: null });
  });

  router.add("GET", "/containers/:id/changes", async ({ res, params }) => {
    const c = containers.get(params.id!);
    const image = await deps.images.resolve(c.imageId);
    sendJson(res, 200, diffUpper(containers.store.paths(c.id).upper, image.lowerDirs));
  });
}
