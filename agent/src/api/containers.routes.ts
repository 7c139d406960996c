/**
 * The Engine API's container endpoints, mapped onto ContainerService: create, list, inspect,
 * start/stop/kill/restart, wait, logs and delete. Attach (a hijacked connection) is in attach.ts.
 */
import type { ServerResponse } from "node:http";
import { InvalidError } from "@flotilla/core";
import { parseEventTime } from "../events/event-bus";
import { selectContainers, CONTAINER_FILTER_KEYS } from "../containers/container-filters";
import type { ContainerService } from "../containers/container-service";
import type { WaitCondition } from "../containers/waiters";
import type { CreateBody } from "../containers/create-request";
import { toContainerInspect, toContainerSummary } from "../containers/docker-shapes";
import { followLog, parseRecords, readLog, renderRecords, type LogQuery } from "../containers/logs";
import type { ImageStore } from "../images";
import type { VolumeStore } from "../volumes/volume-store";
import { checkFilterKeys, labelMatches, parseFilters, queryBool, queryInt, readJson, requester, sendEmpty, sendJson } from "./http-util";
import type { RequestContext, Router } from "./router";

export interface ContainerRouteDeps {
  containers: ContainerService;
  images: ImageStore;
  volumes: VolumeStore;
}

const MULTIPLEXED = "application/vnd.docker.multiplexed-stream";

function timeQuery(q: URLSearchParams, name: string): number | undefined {
  const v = q.get(name);
  if (!v || v === "0") return undefined;
  const t = parseEventTime(v);
  if (!Number.isFinite(t)) throw new InvalidError(`invalid value for ${name}: ${v}`, { field: name });
  return t;
}

/** stdout/stderr/timestamps/tail/since/until of GET /containers/{id}/logs. */
export function logQuery(q: URLSearchParams): LogQuery {
  const tail = q.get("tail");
  let tailN: number | undefined;
  if (tail && tail !== "all") {
    tailN = Number(tail);
    if (!Number.isInteger(tailN)) throw new InvalidError(`invalid value for tail: ${tail}`, { field: "tail" });
    if (tailN < 0) tailN = undefined;
  }
  return {
    stdout: queryBool(q, "stdout"),
    stderr: queryBool(q, "stderr"),
    timestamps: queryBool(q, "timestamps"),
    tail: tailN,
    sinceNano: timeQuery(q, "since"),
    untilNano: timeQuery(q, "until"),
  };
}

/** Streams a container's log as multiplexed frames; with follow, until it stops or the client leaves. */
async function streamLogs(ctx: RequestContext, deps: ContainerRouteDeps, res: ServerResponse): Promise<void> {
  const c = deps.containers.get(ctx.params.id!);
  const q = logQuery(ctx.query);
  if (!q.stdout && !q.stderr) throw new InvalidError("Bad parameters: you must choose at least one stream", { field: "stdout" });
  const follow = queryBool(ctx.query, "follow");
  const path = deps.containers.store.paths(c.id).log;
  // Ask for the stop before reading, so an exit between the read and the follow is not missed.
  const stopped = deps.containers.untilStopped(c.id);
  // --tail reads only the end of the log, however large it is.
  const first = await readLog(path, 0, q.tail);
  let records = parseRecords(first.lines);
  if (q.tail !== undefined) records = q.tail === 0 ? [] : records.slice(-q.tail);
  // A tty container's log is one stream, sent raw as dockerd does (the CLI does not demultiplex it).
  const tty = c.config.Tty;
  const write = (f: Buffer) => res.write(tty ? f.subarray(8) : f);
  res.writeHead(200, { "Content-Type": tty ? "application/vnd.docker.raw-stream" : MULTIPLEXED });
  for (const f of renderRecords(records, q)) write(f);
  if (follow) {
    const abort = new AbortController();
    res.on("close", () => abort.abort());
    const until =
      q.untilNano !== undefined
        ? Promise.race([stopped, new Promise((r) => setTimeout(r, Math.max(0, q.untilNano! / 1e6 - Date.now())))])
        : stopped;
    await followLog(path, first.offset, (recs) => renderRecords(recs, q).forEach(write), { done: until, signal: abort.signal });
  }
  res.end();
}

export function registerContainerRoutes(router: Router, deps: ContainerRouteDeps): void {
  const { containers } = deps;
  const volumePath = (name: string) => deps.volumes.dataPath(name);

  router.add("POST", "/containers/create", async ({ req, res, query }) => {
    const body = await readJson<CreateBody>(req);
    sendJson(res, 201, await containers.create(body, query.get("name") || null));
  });

  router.add("GET", "/containers/json", async ({ res, query }) => {
    const filters = parseFilters(query);
    checkFilterKeys(filters, CONTAINER_FILTER_KEYS);
    const ancestors = new Map<string, string | null>();
    for (const ref of filters.get("ancestor") ?? [])
      ancestors.set(
        ref,
        await deps.images.inspect(ref).then(
          (i) => i.Id,
          () => null,
        ),
      );
    const list = selectContainers(
      containers.all(),
      { all: queryBool(query, "all"), limit: queryInt(query, "limit"), filters },
      (c, ref) => c.image === ref || ancestors.get(ref) === c.imageId,
    );
    sendJson(
      res,
      200,
      list.map((c) => toContainerSummary(c, volumePath)),
    );
  });

  router.add("GET", "/containers/:id/json", ({ res, params }) => {
    const c = containers.get(params.id!);
    const paths = containers.store.paths(c.id);
    sendJson(res, 200, toContainerInspect(c, { root: paths.etc, logPath: paths.log, volumePath }));
  });

  router.add("POST", "/containers/:id/start", async ({ res, params }) => {
    await containers.start(params.id!);
    sendEmpty(res);
  });

  router.add("POST", "/containers/:id/stop", async ({ req, res, params, query }) => {
    await containers.stop(params.id!, queryInt(query, "t"), requester(req));
    sendEmpty(res);
  });

  router.add("POST", "/containers/:id/restart", async ({ req, res, params, query }) => {
    await containers.restart(params.id!, queryInt(query, "t"), requester(req));
    sendEmpty(res);
  });

  router.add("POST", "/containers/:id/kill", async ({ req, res, params, query }) => {
    await containers.kill(params.id!, query.get("signal") || "KILL", requester(req));
    sendEmpty(res);
  });

  router.add("POST", "/containers/:id/wait", async ({ res, params, query }) => {
    const condition = (query.get("condition") || "not-running") as WaitCondition;
    if (!["not-running", "next-exit", "removed"].includes(condition))
      throw new InvalidError(`invalid condition: "${condition}"`, { field: "condition" });
    const result = containers.wait(params.id!, condition);
    // Headers go out at once: the docker CLI waits for them before it starts the container.
    res.writeHead(200, { "Content-Type": "application/json" });
    res.flushHeaders();
    const r = await result;
    res.end(JSON.stringify(r) + "\n");
  });

  router.add("GET", "/containers/:id/logs", (ctx) => streamLogs(ctx, deps, ctx.res));

  router.add("POST", "/containers/prune", async ({ res, query }) => {
    const filters = parseFilters(query);
    checkFilterKeys(filters, ["label", "label!"]);
    const deleted: string[] = [];
    for (const c of containers.all()) {
      if (c.state.status !== "exited" && c.state.status !== "created" && c.state.status !== "dead") continue;
      if (!(filters.get("label") ?? []).every((l) => labelMatches(c.config.Labels, l))) continue;
      if ((filters.get("label!") ?? []).some((l) => labelMatches(c.config.Labels, l))) continue;
      await containers.remove(c.id);
      deleted.push(c.id);
    }
    sendJson(res, 200, { ContainersDeleted: deleted, SpaceReclaimed: 0 });
  });

  router.add("DELETE", "/containers/:id", async ({ req, res, params, query }) => {
    if (queryBool(query, "link")) throw new InvalidError("links are not supported", { field: "link" });
    await containers.remove(params.id!, { force: queryBool(query, "force"), volumes: queryBool(query, "v"), origin: requester(req) });
    sendEmpty(res);
  });
}
