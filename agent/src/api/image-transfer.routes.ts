/**
 * Image endpoints beyond pull: push (X-Registry-Auth), POST /auth (docker login), save
 * (GET /images/get, /images/{name}/get), load (POST /images/load), history, prune, and
 * GET /system/df.
 */
import { InvalidError } from "@flotilla/core";
import type { ContainerService } from "../containers/container-service";
import { toContainerSummary } from "../containers/docker-shapes";
import type { EventBus } from "../events/event-bus";
import type { ImageStore, ProgressMessage } from "../images";
import { loadImages, saveImages } from "../images/archive";
import { ImageConflictError } from "../images/errors";
import { parentIds } from "../images/image-index";
import { familiarize } from "../images/reference";
import type { VolumeStore } from "../volumes/volume-store";
import { registryCredentials } from "./images.routes";
import { checkFilterKeys, errorStatus, labelMatches, parseFilters, queryBool, readJson, sendJson } from "./http-util";
import type { Router } from "./router";

export interface ImageTransferDeps {
  images: ImageStore;
  containers: ContainerService;
  volumes: VolumeStore;
  events: EventBus;
}

const SECONDS = (iso: string) => (Date.parse(iso) ? Math.floor(Date.parse(iso) / 1000) : 0);

export function registerImageTransferRoutes(router: Router, deps: ImageTransferDeps): void {
  const { images, events } = deps;

  router.add("POST", "/auth", async ({ req, res }) => {
    const body = await readJson<{ username?: string; password?: string; serveraddress?: string; identitytoken?: string }>(req);
    if (!body.username) throw new InvalidError("username is required", { field: "username" });
    let domain = (body.serveraddress ?? "").replace(/^https?:\/\//, "").replace(/\/.*$/, "");
    if (!domain || domain === "index.docker.io") domain = "docker.io";
    await images.login(domain, { username: body.username, password: body.password ?? "" });
    sendJson(res, 200, { Status: "Login Succeeded", IdentityToken: "" });
  });

  router.add("POST", "/images/*name/push", async ({ req, res, params, query }) => {
    const tag = query.get("tag");
    const name = tag ? `${params.name}:${tag}` : params.name!;
    const credentials = registryCredentials(req.headers["x-registry-auth"]);
    images.record(name); // 404 before any output when there is no such image
    res.writeHead(200, { "Content-Type": "application/json" });
    const write = (m: object) => res.write(JSON.stringify(m) + "\r\n");
    try {
      const result = await images.push(name, { credentials, onProgress: (m: ProgressMessage) => write(m) });
      write({ progressDetail: {}, aux: { Tag: result.tag, Digest: result.digest, Size: result.size } });
      events.emit("image", "push", name, { name });
      res.end();
    } catch (err) {
      const { message } = errorStatus(err);
      res.end(JSON.stringify({ errorDetail: { message }, error: message }) + "\r\n");
    }
  });

  router.add("GET", "/images/*name/history", async ({ res, params }) => {
    const record = images.record(params.name!);
    const config = await images.imageConfig(record.id);
    const chain: string[] = [];
    for (let id: string | undefined = record.id; id;) {
      chain.push(id);
      try {
        id = images.record(id).parent;
      } catch {
        id = undefined;
      }
    }
    const history = [...(config.history ?? [])].reverse();
    let layerIndex = record.layers.length - 1;
    const out = history.map((h, i) => {
      const size = h.empty_layer ? 0 : images.layerSize(record.layers[layerIndex--]?.diffId ?? "");
      const id = chain[i] ?? "<missing>";
      return {
        Id: id,
        Created: SECONDS(h.created ?? ""),
        CreatedBy: h.created_by ?? "",
        Tags: id === "<missing>" ? null : images.tagsOf(id).map(familiarize),
        Size: size,
        Comment: h.comment ?? "",
      };
    });
    sendJson(res, 200, out);
  });

  const save = async (res: import("node:http").ServerResponse, names: string[]) => {
    if (names.length === 0) throw new InvalidError("no image names given", { field: "names" });
    for (const n of names) images.record(n);
    res.writeHead(200, { "Content-Type": "application/x-tar" });
    try {
      for await (const chunk of saveImages(images, names)) {
        if (!res.write(chunk)) await new Promise((r) => res.once("drain", r));
      }
      res.end();
    } catch {
      res.destroy(); // A truncated tar must not look complete.
    }
  };
  router.add("GET", "/images/get", ({ res, query }) => save(res, query.getAll("names")));
  router.add("GET", "/images/*name/get", ({ res, params }) => save(res, [params.name!]));

  router.add("POST", "/images/load", async ({ req, res, query }) => {
    void queryBool(query, "quiet"); // The CLI prints "Loaded image" lines either way.
    const lines: string[] = [];
    await loadImages(images, req as AsyncIterable<Buffer>, (line) => lines.push(line));
    res.writeHead(200, { "Content-Type": "application/json" });
    for (const line of lines) {
      res.write(JSON.stringify({ stream: line }) + "\r\n");
      const name = line.replace(/^Loaded image(?: ID)?: /, "").trim();
      events.emit("image", "load", name, { name });
    }
    res.end();
  });

  router.add("POST", "/images/prune", async ({ res, query }) => {
    const filters = parseFilters(query);
    checkFilterKeys(filters, ["dangling", "label", "until"]);
    const danglingOnly = !["false", "0"].includes(filters.get("dangling")?.[0] ?? "true");
    const until = filters.get("until")?.[0];
    const cutoff = until ? (/^\d+$/.test(until) ? Number(until) * 1000 : Date.parse(until)) : undefined;
    const deleted: Array<{ Untagged?: string; Deleted?: string }> = [];
    const skip = new Set<string>();
    let reclaimed = 0;
    const labelsMatch = (labels: Record<string, string>) =>
      (filters.get("label") ?? []).every((l) => (l.includes("!=") ? !labelMatches(labels, l.replace("!=", "=")) : labelMatches(labels, l)));
    // One at a time: removing an image can make its parent a candidate (or remove it too).
    for (;;) {
      const parents = parentIds({ version: 1, images: Object.fromEntries(images.records().map((r) => [r.id, r])), tags: {}, layers: {} });
      const doomed = images.records().find((r) => {
        if (skip.has(r.id) || parents.has(r.id) || deps.containers.store.usesImage(r.id)) return false;
        if (danglingOnly && (images.tagsOf(r.id).length > 0 || r.repoDigests.length > 0)) return false;
        return cutoff === undefined || Date.parse(r.created || r.pulledAt) < cutoff;
      });
      if (!doomed) break;
      skip.add(doomed.id);
      if (!labelsMatch((await images.imageConfig(doomed.id)).config?.Labels ?? {})) continue;
      try {
        const result = await images.remove(doomed.id, { force: true, isInUse: (id) => deps.containers.store.usesImage(id) });
        deleted.push(...result);
        reclaimed += doomed.size;
      } catch (e) {
        if (!(e instanceof ImageConflictError)) throw e;
      }
    }
    sendJson(res, 200, { ImagesDeleted: deleted.length ? deleted : null, SpaceReclaimed: reclaimed });
  });

  router.add("GET", "/system/df", async ({ res }) => {
    const list = await images.list({ all: true });
    const counts = new Map<string, number>();
    for (const c of deps.containers.all()) counts.set(c.imageId, (counts.get(c.imageId) ?? 0) + 1);
    const layerUse = new Map<string, number>();
    for (const r of images.records()) for (const d of new Set(r.layers.map((l) => l.diffId))) layerUse.set(d, (layerUse.get(d) ?? 0) + 1);
    const layersSize = [...layerUse.keys()].reduce((n, d) => n + images.layerSize(d), 0);
    const imagesOut = list.map((i) => {
      const shared = [...new Set(images.record(i.Id).layers.map((l) => l.diffId))]
        .filter((d) => (layerUse.get(d) ?? 0) > 1)
        .reduce((n, d) => n + images.layerSize(d), 0);
      return { ...i, SharedSize: shared, Containers: counts.get(i.Id) ?? 0 };
    });
    const volumePath = (name: string) => deps.volumes.dataPath(name);
    const volumes = (await deps.volumes.list()).map((v) => ({
      ...v,
      UsageData: { Size: -1, RefCount: deps.containers.store.volumeUsers(v.Name).length },
    }));
    sendJson(res, 200, {
      LayersSize: layersSize,
      Images: imagesOut,
      Containers: deps.containers.all().map((c) => ({ ...toContainerSummary(c, volumePath), SizeRw: 0, SizeRootFs: 0 })),
      Volumes: volumes,
      BuildCache: [],
    });
  });
}
