/**
 * POST /flotilla/containers/launch: the control plane's dispatch of many task containers in one
 * request (LaunchRequest in the control plane's engine client), where a launch was otherwise three calls
 * (create, start, inspect) per container. Each container is created — or, when its name is
 * taken, the existing one is used: an earlier attempt created it — then started, and reported
 * as dispatch needs it (id, health, published ports). A failure is that container's result,
 * never the whole request's, so one bad spec does not hold back the others.
 */
import { InvalidError } from "@flotilla/core";
import type { ContainerService } from "../containers/container-service";
import type { CreateBody } from "../containers/create-request";
import { portsMap } from "../containers/docker-shapes";
import { NotModifiedError } from "../engine-errors";
import { runLimited } from "../run-limited";
import { errorStatus, readJson, sendJson } from "./http-util";
import type { Router } from "./router";

/** Containers per request: the control plane sends fewer; more is a client's mistake. */
export const MAX_LAUNCHES = 256;
// Containers set up at once: starts spawn shims and set up namespaces, as the calls did in parallel.
const IN_FLIGHT = 8;

/** One container's result (the control plane's engine client reads it as LaunchResult). */
type LaunchResult =
  | { Name: string; Id: string; Health?: string; Ports: ReturnType<typeof portsMap> }
  | { Name: string; Status: number; Message: string; Id?: string };

interface LaunchBody {
  Launches?: unknown;
}

/** The request's launches, or a 400 naming what is wrong. */
export function launchesOf(body: LaunchBody): { Name: string; Config: CreateBody }[] {
  const list = body.Launches;
  if (!Array.isArray(list)) throw new InvalidError("Launches must be an array of {Name, Config}", { field: "Launches" });
  if (list.length > MAX_LAUNCHES)
    throw new InvalidError(`at most ${MAX_LAUNCHES} launches per request (got ${list.length})`, { field: "Launches" });
  const names = new Set<string>();
  return list.map((l: unknown, i) => {
    const { Name, Config } = (l ?? {}) as { Name?: unknown; Config?: unknown };
    if (typeof Name !== "string" || !Name) throw new InvalidError(`Launches[${i}].Name must be a container name`, { field: "Name" });
    if (names.has(Name)) throw new InvalidError(`Launches[${i}].Name ${Name} appears twice`, { field: "Name" });
    names.add(Name);
    if (Config === null || typeof Config !== "object" || Array.isArray(Config))
      throw new InvalidError(`Launches[${i}].Config must be a container create body`, { field: "Config" });
    return { Name, Config: Config as CreateBody };
  });
}

async function launchOne(containers: ContainerService, name: string, config: CreateBody): Promise<LaunchResult> {
  let id: string | undefined;
  try {
    try {
      id = (await containers.create(config, name)).Id;
    } catch (e) {
      if (errorStatus(e).status !== 409) throw e;
      id = containers.get(name).id;
    }
    await containers.start(id).catch((e: unknown) => {
      if (!(e instanceof NotModifiedError)) throw e;
    });
    const c = containers.get(id);
    return { Name: name, Id: c.id, ...(c.state.health ? { Health: c.state.health.Status } : {}), Ports: portsMap(c) };
  } catch (e) {
    const { status, message } = errorStatus(e);
    return { Name: name, Status: status, Message: message, ...(id ? { Id: id } : {}) };
  }
}

export function registerLaunchRoutes(router: Router, deps: { containers: ContainerService }): void {
  router.add("POST", "/flotilla/containers/launch", async ({ req, res }) => {
    const launches = launchesOf(await readJson<LaunchBody>(req));
    const results: LaunchResult[] = new Array(launches.length);
    // launchOne never throws: a failure is that container's result.
    await runLimited(
      launches.map((l, i) => ({ ...l, i })),
      IN_FLIGHT,
      async ({ Name, Config, i }) => {
        results[i] = await launchOne(deps.containers, Name, Config);
      },
    );
    sendJson(res, 200, { Results: results });
  });
}
