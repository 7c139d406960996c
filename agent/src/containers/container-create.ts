/**
 * POST /containers/create: the request validated and merged with the image's defaults
 * (create-request.ts), the name claimed, volumes made, the container's directory and record
 * written. Anything refused on the way undoes what was made before it.
 */
import * as fs from "node:fs/promises";
import { hostname as hostHostname } from "node:os";
import { InvalidError } from "@flotilla/core";
import type { EventBus } from "../events/event-bus";
import type { ImageStore } from "../images";
import { ANONYMOUS_LABEL, type VolumeStore } from "../volumes/volume-store";
import { checkBindSource } from "./bind-policy";
import type { ContainerStore } from "./container-store";
import type { OverlayNetworksPort, UserNetworksPort } from "./network-port";
import { DomainError, NotSupportedError } from "@flotilla/core";
import type { ContainerRecord } from "./container-types";
import { parseCreateRequest, validateName, type CreateBody } from "./create-request";
import { parseTaskFiles, type TaskFiles } from "./task-files";
import { imageHasShell } from "./rootfs-files";

export interface CreateDeps {
  store: ContainerStore;
  images: ImageStore;
  volumes: VolumeStore;
  events: EventBus;
  /** User-defined networks, or null when the agent has no bridge networking. */
  userNetworks: UserNetworksPort | null;
  /** Overlay networks of the node's table, or null when the agent has none. */
  overlayNetworks?: OverlayNetworksPort | null;
  /** Bind sources refused on this machine. */
  denyBinds?: readonly string[];
  /** Event attributes of a container (name, image, labels). */
  attributes: (c: ContainerRecord) => Record<string, string>;
  /** Where secret and config files are kept. */
  files: TaskFiles;
}

/** POST /containers/create. Validation first: a refused request leaves nothing behind. */
export async function createContainer(
  deps: CreateDeps,
  body: CreateBody,
  nameParam: string | null,
): Promise<{ Id: string; Warnings: string[] }> {
  const name = nameParam ? validateName(nameParam) : deps.store.newName();
  if (!body || typeof body.Image !== "string" || !body.Image) throw new InvalidError("config error: Image is required", { field: "Image" });
  const image = await deps.images.resolve(body.Image);
  const spec = parseCreateRequest(body, image.config);
  const files = parseTaskFiles(body.FlotillaFiles);
  // Docker would only fail each probe ("exec: /bin/sh: no such file"), leaving the container
  // unhealthy for a reason found in its inspect: refuse it here, naming the fix.
  if (spec.config.Healthcheck?.Test?.[0] === "CMD-SHELL" && !(await imageHasShell(image.lowerDirs))) {
    throw new InvalidError(
      `Healthcheck: a shell health command (--health-cmd, CMD-SHELL) needs /bin/sh, which image ${body.Image} does not have; use the exec form ["CMD", program, args...] or --no-healthcheck`,
      { field: "Healthcheck" },
    );
  }
  const networks: ContainerRecord["networks"] = [];
  for (const [i, r] of spec.networkRequests.entries()) {
    if (!deps.userNetworks)
      throw new NotSupportedError(`network ${r.name}: user-defined networks need bridge networking, which this agent does not have`, {
        field: "NetworkMode",
      });
    const n = deps.userNetworks.find(r.name);
    if (n) {
      networks.push({ networkId: n.id, name: n.name, aliases: r.aliases, ipv4Address: r.ipv4Address });
      continue;
    }
    networks.push(await overlayRequest(deps, r, i === 0 && spec.networkMode === "user"));
  }
  const id = deps.store.newId();
  deps.store.claimName(name, id);
  const paths = deps.store.paths(id);
  const madeVolumes: string[] = [];
  try {
    for (const m of spec.mounts) {
      if (m.type === "bind" && deps.denyBinds?.length) await checkBindSource(m.source, deps.denyBinds);
      if (m.type === "bind" && !m.createSource) {
        await fs.stat(m.source).catch(() => {
          throw new InvalidError(`invalid mount config for type "bind": bind source path does not exist: ${m.source}`, { field: "Mounts" });
        });
      }
      if (m.type !== "volume") continue;
      const { volume, created } = await deps.volumes.create({
        Name: m.name || undefined,
        Labels: m.anonymous ? { [ANONYMOUS_LABEL]: "" } : {},
      });
      m.name = volume.Name;
      if (created) {
        madeVolumes.push(volume.Name);
        deps.events.emit("volume", "create", volume.Name, { driver: "local" });
      }
    }
    // The upper dir's own mode is the container's "/" (overlayfs takes a merged directory's
    // attributes from its upper): 0755 as in an image, or only root could walk the rootfs.
    await fs.mkdir(paths.upper, { recursive: true, mode: 0o755 });
    await fs.chmod(paths.upper, 0o755);
    for (const d of [paths.work, paths.etc]) await fs.mkdir(d, { recursive: true, mode: 0o700 });
    const fileRefs = await deps.files.write(id, files);
    const hostname = spec.config.Hostname || (spec.networkMode === "host" ? hostHostname() : id.slice(0, 12));
    const record: ContainerRecord = {
      id,
      name,
      created: new Date().toISOString(),
      image: body.Image,
      imageId: image.id,
      path: spec.path,
      args: spec.args,
      config: { ...spec.config, Hostname: hostname },
      hostConfig: spec.hostConfig,
      networkMode: spec.networkMode,
      ports: spec.ports,
      mounts: spec.mounts,
      state: { status: "created", pid: 0, shimPid: 0, exitCode: 0, oomKilled: false, error: "", startedAt: null, finishedAt: null },
      restartCount: 0,
      manualStop: false,
      network: null,
      networks,
      ...(fileRefs.length ? { files: fileRefs } : {}),
    };
    await deps.store.save(record);
    deps.events.emit("container", "create", id, deps.attributes(record));
    return { Id: id, Warnings: [] };
  } catch (err) {
    deps.store.releaseName(name, id);
    await fs.rm(paths.dir, { recursive: true, force: true });
    await deps.files.remove(id);
    for (const v of madeVolumes) await deps.volumes.remove(v, [], true).catch(() => {});
    throw err;
  }
}

/**
 * A network that is no user-defined one may be an overlay network of the control plane's table
 * (fetched once when not known yet). It is attached beside the primary network, never as it, and
 * only at the address the control plane gave the task.
 */
async function overlayRequest(
  deps: CreateDeps,
  r: { name: string; aliases: string[]; ipv4Address: string },
  primary: boolean,
): Promise<NonNullable<ContainerRecord["networks"]>[number]> {
  const o = deps.overlayNetworks ? await deps.overlayNetworks.lookup(r.name) : undefined;
  if (!o) {
    const why = deps.overlayNetworks?.unavailable;
    const table = deps.overlayNetworks
      ? ` (nor an overlay network of this node's table, version ${deps.overlayNetworks.version ?? "none"}${why ? `: this node takes part in no overlay network: ${why}` : ""})`
      : "";
    throw new DomainError("not_found", `network ${r.name} not found${table}`, { field: "NetworkMode" });
  }
  if (primary)
    throw new InvalidError(
      `network ${r.name} is an overlay network and cannot be the container's primary network (HostConfig.NetworkMode); keep the default bridge and attach it through NetworkingConfig.EndpointsConfig`,
      { field: "HostConfig.NetworkMode" },
    );
  if (!r.ipv4Address)
    throw new InvalidError(
      `overlay network ${o.name}: NetworkingConfig.EndpointsConfig.${r.name}.IPAMConfig.IPv4Address is required (the control plane assigns task addresses)`,
      { field: `EndpointsConfig.${r.name}.IPAMConfig.IPv4Address` },
    );
  return { networkId: o.id, name: o.name, aliases: r.aliases, ipv4Address: r.ipv4Address, driver: "overlay" };
}
