/**
 * The Engine API's image endpoints, delegated to the ImageStore: pull (streamed progress),
 * list, inspect, tag, remove. Images used by a container are protected through usesImage.
 */
import { InvalidError, NotSupportedError } from "@flotilla/core";
import type { ContainerService } from "../containers/container-service";
import type { EventBus } from "../events/event-bus";
import type { Credentials, ImageStore, ImageSummary, ProgressMessage } from "../images";
import { checkFilterKeys, errorStatus, labelMatches, parseFilters, queryBool, sendJson } from "./http-util";
import type { Router } from "./router";

export interface ImageRouteDeps {
  images: ImageStore;
  containers: ContainerService;
  events: EventBus;
}

/** X-Registry-Auth: base64url JSON {username, password, …}; empty or `{}` means anonymous. */
export function registryCredentials(header: string | string[] | undefined): Credentials | undefined {
  const value = Array.isArray(header) ? header[0] : header;
  if (!value) return undefined;
  try {
    const json = JSON.parse(Buffer.from(value.replace(/-/g, "+").replace(/_/g, "/"), "base64").toString("utf8")) as {
      username?: string;
      password?: string;
    };
    return json.username ? { username: json.username, password: json.password ?? "" } : undefined;
  } catch {
    throw new InvalidError("invalid X-Registry-Auth header", { field: "X-Registry-Auth" });
  }
}

/** fromImage + tag → one reference (`tag` may be a digest). */
export function pullReference(fromImage: string, tag: string | null): string {
  if (!tag) return fromImage;
  return tag.startsWith("sha256:") ? `${fromImage}@${tag}` : `${fromImage}:${tag}`;
}

/**
 * Docker's reference filter: `busybox`, `busybox:*`, `*box` against familiar `repo:tag` names.
 * Like dockerd, an image keeps only its matching tags (the CLI prints one row per tag).
 */
function filterByReference(image: ImageSummary, patterns: readonly string[]): ImageSummary | null {
  const globs = patterns.map(
    (p) =>
      new RegExp(
        `^${p
          .replace(/[.+^${}()|[\]\\]/g, "\\$&")
          .replace(/\*/g, "[^/]*")
          .replace(/\?/g, ".")}$`,
      ),
  );
  const matches = (name: string, repo: string) => globs.some((g) => g.test(name) || g.test(repo));
  const tags = image.RepoTags.filter((t) => matches(t, t.slice(0, t.lastIndexOf(":"))));
  const digests = image.RepoDigests.filter((d) => matches(d, d.slice(0, d.indexOf("@"))));
  return tags.length || digests.length ? { ...image, RepoTags: tags, RepoDigests: digests } : null;
}

export function registerImageRoutes(router: Router, deps: ImageRouteDeps): void {
  const { images, events } = deps;

  router.add("POST", "/images/create", async ({ req, res, query }) => {
    const from = query.get("fromImage");
    if (query.get("fromSrc")) throw new NotSupportedError("importing images (fromSrc) is not supported", { field: "fromSrc" });
    if (!from) throw new InvalidError("fromImage is required", { field: "fromImage" });
    const reference = pullReference(from, query.get("tag"));
    const credentials = registryCredentials(req.headers["x-registry-auth"]);
    const abort = new AbortController();
    res.on("close", () => !res.writableFinished && abort.abort());
    // The first message is held back: a pull that fails before any real progress answers with a
    // proper status (404 for an unknown image) instead of a 200 carrying an error line.
    let held: ProgressMessage | null = null;
    const write = (m: ProgressMessage) => res.write(JSON.stringify(m) + "\r\n");
    const onProgress = (m: ProgressMessage) => {
      if (!res.headersSent) {
        if (!held) return void (held = m);
        res.writeHead(200, { "Content-Type": "application/json" });
        write(held);
      }
      write(m);
    };
    try {
      const result = await images.pull(reference, { onProgress, credentials, signal: abort.signal });
      if (!res.headersSent) {
        res.writeHead(200, { "Content-Type": "application/json" });
        if (held) write(held);
      }
      events.emit("image", "pull", result.reference, { name: result.reference });
      res.end();
    } catch (err) {
      if (!res.headersSent) throw err;
      const { message } = errorStatus(err);
      res.end(JSON.stringify({ errorDetail: { message }, error: message }) + "\r\n");
    }
  });

  router.add("GET", "/images/json", async ({ res, query }) => {
    const filters = parseFilters(query);
    checkFilterKeys(filters, ["reference", "dangling", "label", "before", "since"]);
    let list = await images.list({ all: queryBool(query, "all") });
    const counts = new Map<string, number>();
    for (const c of deps.containers.all()) counts.set(c.imageId, (counts.get(c.imageId) ?? 0) + 1);
    list = list.map((i) => ({ ...i, Containers: counts.get(i.Id) ?? 0 }));
    const refs = filters.get("reference") ?? [];
    if (refs.length) list = list.map((i) => filterByReference(i, refs)).filter((i): i is ImageSummary => i !== null);
    const dangling = filters.get("dangling")?.[0];
    if (dangling !== undefined) list = list.filter((i) => (i.RepoTags.length === 0) === (dangling === "true" || dangling === "1"));
    for (const l of filters.get("label") ?? []) list = list.filter((i) => labelMatches(i.Labels, l));
    sendJson(res, 200, list);
  });

  router.add("GET", "/images/*name/json", async ({ res, params }) => {
    sendJson(res, 200, await images.inspect(params.name!));
  });

  router.add("POST", "/images/*name/tag", async ({ res, params, query }) => {
    const repo = query.get("repo");
    if (!repo) throw new InvalidError("repository name is required", { field: "repo" });
    const target = pullReference(repo, query.get("tag") || "latest");
    await images.tag(params.name!, target);
    events.emit("image", "tag", params.name!, { name: target });
    sendJson(res, 201, {});
  });

  router.add("DELETE", "/images/*name", async ({ res, params, query }) => {
    const result = await images.remove(params.name!, {
      force: queryBool(query, "force"),
      isInUse: (id) => deps.containers.store.usesImage(id),
    });
    for (const r of result) if ("Untagged" in r) events.emit("image", "untag", r.Untagged, { name: r.Untagged });
    // The first Deleted line is the image; the rest are its layers.
    const deleted = result.find((r): r is { Deleted: string } => "Deleted" in r);
    if (deleted) events.emit("image", "delete", deleted.Deleted, { name: params.name! });
    sendJson(res, 200, result);
  });
}
