/**
 * docker cp (GET/HEAD/PUT /containers/{id}/archive) and docker export (GET
 * /containers/{id}/export). A running container is reached through its init's `/proc/PID/root`
 * (its volumes included, as dockerd shows them); a stopped one through a mount of its overlay
 * that exists only for the request (rootfs-mount.ts), and a start waits for a copy into it.
 * Export always reads such a mount, read-only: the container's own files, no /proc, no volumes.
 */
import { randomBytes } from "node:crypto";
import * as fs from "node:fs";
import { join } from "node:path";
import { ConflictError, InvalidError } from "@flotilla/core";
import type { ContainerService } from "../containers/container-service";
import type { ContainerRecord } from "../containers/container-types";
import { openRoot, pathStat, resolveInRoot, tarIn, tarOut, tarTree } from "../containers/archive";
import { mountRootfs } from "../containers/rootfs-mount";
import { readShimState } from "../containers/shim-client";
import type { EventBus } from "../events/event-bus";
import type { ImageStore } from "../images";
import { queryBool } from "./http-util";
import type { Router } from "./router";

export interface ArchiveDeps {
  containers: ContainerService;
  images: ImageStore;
  events: EventBus;
}

export function registerArchiveRoutes(router: Router, deps: ArchiveDeps): void {
  const { containers } = deps;

  /** Runs `work` with a descriptor of the container's file system mounted as `writable` or not. */
  const onMount = async <T>(c: ContainerRecord, writable: boolean, work: (rootFd: number) => Promise<T>): Promise<T> => {
    const image = await deps.images.resolve(c.imageId);
    const p = containers.store.paths(c.id);
    if (writable) fs.mkdirSync(p.work, { recursive: true, mode: 0o700 });
    const m = await mountRootfs({ lowerDirs: image.lowerDirs, upper: p.upper, work: p.work }, join(p.dir, "mnt"), writable);
    try {
      const fd = openRoot(m.path);
      try {
        return await work(fd);
      } finally {
        fs.closeSync(fd);
      }
    } finally {
      await m.release();
    }
  };

  /** Runs `work` with the root of the container, running or stopped. */
  const withRoot = async <T>(ref: string, writable: boolean, work: (rootFd: number, c: ContainerRecord) => Promise<T>): Promise<T> => {
    const c = containers.get(ref);
    const s = c.state.status === "running" ? readShimState(containers.store.paths(c.id).stateDir) : null;
    if (s?.status === "running") {
      const fd = openRoot(`/proc/${s.pid}/root`);
      try {
        return await work(fd, c);
      } finally {
        fs.closeSync(fd);
      }
    }
    if (containers.isStarting(c.id)) throw new ConflictError(`Container ${c.id} is starting, try again once it runs`);
    return containers.whileStopped(c.id, () => onMount(c, writable, (fd) => work(fd, c)));
  };

  router.add("GET", "/containers/:id/archive", async ({ req, res, params, query }) => {
    const path = query.get("path") ?? "";
    if (!path) throw new InvalidError("Path cannot be empty", { field: "path" });
    await withRoot(params.id!, false, async (rootFd) => {
      const r = resolveInRoot(rootFd, path, path.endsWith("/") || path.endsWith("/."));
      try {
        const stat = pathStat(r, path);
        if (req.method === "HEAD") {
          res.writeHead(200, { "X-Docker-Container-Path-Stat": stat, "Content-Length": 0 });
          res.end();
          return;
        }
        res.writeHead(200, { "Content-Type": "application/x-tar", "X-Docker-Container-Path-Stat": stat });
        await tarOut(r, res);
        res.end();
      } finally {
        r.close();
      }
    });
  });

  router.add("PUT", "/containers/:id/archive", async ({ req, res, params, query }) => {
    const path = query.get("path") ?? "";
    if (!path) throw new InvalidError("Path cannot be empty", { field: "path" });
    await withRoot(params.id!, true, async (rootFd, c) => {
      const stage = join(containers.store.paths(c.id).dir, `cp-${randomBytes(6).toString("hex")}`);
      await tarIn(rootFd, path, req, stage, queryBool(query, "copyUIDGID"));
    });
    res.writeHead(200, { "Content-Length": 0 });
    res.end();
  });

  router.add("GET", "/containers/:id/export", async ({ res, params }) => {
    const c = containers.get(params.id!);
    await onMount(c, false, async (rootFd) => {
      res.writeHead(200, { "Content-Type": "application/x-tar" });
      await tarTree(rootFd, res);
      res.end();
    });
    deps.events.emit("container", "export", c.id, containers.attributes(c));
  });
}
