/**
 * The Engine API's exec and tty endpoints: POST /containers/{id}/exec, /exec/{id}/start
 * (detached here; attached through the upgrade handler in attach.ts), /exec/{id}/resize,
 * GET /exec/{id}/json, and POST /containers/{id}/resize.
 */
import type { Duplex } from "node:stream";
import { ConflictError, InvalidError } from "@flotilla/core";
import type { ContainerService } from "../containers/container-service";
import { resizeTty } from "../exec/attach-socket";
import type { ExecCreateBody } from "../exec/exec-args";
import type { ExecService } from "../exec/exec-service";
import { HttpError, readJson, sendJson } from "./http-util";
import type { Router } from "./router";

export interface ExecRouteDeps {
  containers: ContainerService;
  execs: ExecService;
}

/** h and w of a resize: unsigned integers, as dockerd parses them. */
export function resizeQuery(q: URLSearchParams): { rows: number; cols: number } {
  const parse = (name: string) => {
    const v = q.get(name) ?? "";
    if (!/^\d+$/.test(v) || Number(v) > 65535)
      throw new InvalidError(`invalid ${name === "h" ? "height" : "width"}: ${JSON.stringify(v)}`, { field: name });
    return Number(v);
  };
  return { rows: parse("h"), cols: parse("w") };
}

export function registerExecRoutes(router: Router, deps: ExecRouteDeps): void {
  const { containers, execs } = deps;

  router.add("POST", "/containers/:id/exec", async ({ req, res, params }) => {
    const body = await readJson<ExecCreateBody>(req);
    sendJson(res, 201, execs.create(params.id!, body));
  });

  router.add("POST", "/exec/:id/start", async ({ req, res, params }) => {
    const body = await readJson<{ Detach?: boolean; Tty?: boolean }>(req);
    if (!body.Detach) throw new HttpError(400, "an attached exec start needs a connection upgrade (Connection: Upgrade, Upgrade: tcp)");
    await execs.startDetached(params.id!);
    res.writeHead(200, { "Content-Length": 0 });
    res.end();
  });

  router.add("POST", "/exec/:id/resize", ({ res, params, query }) => {
    const { rows, cols } = resizeQuery(query);
    execs.resize(params.id!, rows, cols);
    res.writeHead(200, { "Content-Length": 0 });
    res.end();
  });

  router.add("GET", "/exec/:id/json", ({ res, params }) => {
    sendJson(res, 200, execs.inspect(params.id!));
  });

  router.add("POST", "/containers/:id/resize", ({ res, params, query }) => {
    const { rows, cols } = resizeQuery(query);
    const c = containers.get(params.id!);
    if (c.state.status !== "running") throw new ConflictError(`Container ${c.id} is not running`);
    // Without a tty there is nothing to size: dockerd (containerd) answers 200 all the same.
    if (c.config.Tty) resizeTty(containers.store.paths(c.id).stateDir, rows, cols);
    res.writeHead(200, { "Content-Length": 0 });
    res.end();
  });
}

/** The upgraded POST /exec/{id}/start: checks, 101, then the process's stream. */
export async function execStartHijacked(execs: ExecService, id: string, socket: Duplex, upgraded: boolean): Promise<void> {
  const x = execs.checkStartable(id);
  const type = x.spec.tty ? "application/vnd.docker.raw-stream" : "application/vnd.docker.multiplexed-stream";
  socket.write(
    upgraded
      ? `HTTP/1.1 101 UPGRADED\r\nContent-Type: ${type}\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n`
      : `HTTP/1.1 200 OK\r\nContent-Type: ${type}\r\n\r\n`,
  );
  await execs.startAttached(id, socket);
}
