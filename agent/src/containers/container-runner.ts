/**
 * Starts one container: resolves its image layers, user and mounts, attaches its network,
 * writes its /etc files and runs the shim. Undoes the network attachment when the shim fails,
 * so a failed start leaves nothing behind (the shim cleans up its own cgroup and mounts).
 */
import * as fs from "node:fs/promises";
import { InvalidError, NotSupportedError } from "@flotilla/core";
import { HttpError } from "../engine-errors";
import type { ImageStore } from "../images";
import type { VolumeStore } from "../volumes/volume-store";
import { checkBindSource } from "./bind-policy";
import type { ContainerStore } from "./container-store";
import type { ContainerRecord, NetworkInfo } from "./container-types";
import { fromPortMappings, toPortMappings, type NetworkPort } from "./network-port";
import { resolveUser, writeEtcFiles } from "./rootfs-files";
import { shimRunArgs, type ResolvedMount } from "./shim-args";
import { ShimRunError, shimRun, type ShimState } from "./shim-client";
import type { TaskFiles } from "./task-files";

export interface RunnerDeps {
  store: ContainerStore;
  images: ImageStore;
  volumes: VolumeStore;
  network: NetworkPort | null;
  shimPath: string;
  denyBinds?: readonly string[];
  files: TaskFiles;
}

export interface Started {
  state: ShimState;
  network: NetworkInfo | null;
}

/**
 * A shim failure in the words the docker CLI looks for: it exits 127 when the message says
 * "executable file not found" or "no such file or directory", 126 on "permission denied".
 */
export function startError(err: ShimRunError, command: string): HttpError {
  const detail = err.message;
  // The shim already words these as runc does; add the command only when it did not.
  if (
    (err.exitCode === 126 || err.exitCode === 127) &&
    /executable file not found|no such file or directory|permission denied/i.test(detail)
  ) {
    return Object.assign(new HttpError(400, `failed to create task for container: ${detail}`), { exitCode: err.exitCode });
  }
  if (err.exitCode === 127) {
    return Object.assign(
      new HttpError(400, `failed to create task for container: exec: "${command}": executable file not found in $PATH: ${detail}`),
      { exitCode: 127 },
    );
  }
  if (err.exitCode === 126) {
    return Object.assign(new HttpError(400, `failed to create task for container: exec: "${command}": permission denied: ${detail}`), {
      exitCode: 126,
    });
  }
  return Object.assign(new HttpError(500, `failed to create task for container: ${detail}`), { exitCode: 125 });
}

export class ContainerRunner {
  constructor(private readonly deps: RunnerDeps) {}

  private async mounts(c: ContainerRecord): Promise<ResolvedMount[]> {
    const out: ResolvedMount[] = [];
    for (const m of c.mounts) {
      if (m.type === "tmpfs") out.push(m);
      else if (m.type === "bind") {
        const denied = this.deps.denyBinds ?? [];
        // Checked again at every start: the source may have become a symlink since create.
        if (denied.length) await checkBindSource(m.source, denied);
        // -v makes a missing source a directory, as dockerd does; an existing file is bound as it is.
        if (m.createSource)
          await fs.mkdir(m.source, { recursive: true }).catch((e: NodeJS.ErrnoException) => {
            if (e.code !== "EEXIST") throw e;
          });
        else
          await fs.stat(m.source).catch(() => {
            throw new InvalidError(`invalid mount config for type "bind": bind source path does not exist: ${m.source}`, {
              field: "Mounts",
            });
          });
        const source = denied.length ? await checkBindSource(m.source, denied) : m.source;
        out.push({ type: "bind", source, target: m.target, readOnly: m.readOnly });
      } else {
        // Created on demand: a volume removed while the container was stopped comes back empty.
        const { volume } = await this.deps.volumes.create({ Name: m.name });
        out.push({ type: "bind", source: volume.Mountpoint, target: m.target, readOnly: m.readOnly });
      }
    }
    // Last: a secret's file is never hidden by a mount of its directory.
    if (c.files?.length) out.push(...(await this.deps.files.mounts(c.id, c.files)));
    return out;
  }

  private async attach(c: ContainerRecord): Promise<{ netns: string; info: NetworkInfo | null }> {
    if (c.networkMode === "host") return { netns: "host", info: null };
    // A "user" container disconnected from all its networks runs with loopback only.
    if (c.networkMode === "none" || (c.networkMode === "user" && !c.networks?.length)) return { netns: "new", info: null };
    const network = this.deps.network;
    const wanted = c.networks ?? [];
    if (!network) {
      if (c.ports.length)
        throw new NotSupportedError(
          "publishing ports needs bridge networking, which this agent does not have (network module not loaded)",
          { field: "PortBindings" },
        );
      if (wanted.length)
        throw new NotSupportedError("user-defined networks need bridge networking, which this agent does not have", {
          field: "NetworkMode",
        });
      return { netns: "new", info: null };
    }
    const user = network.user;
    // User-defined bridge networks first (the primary one as eth0 in "user" mode), then overlay
    // networks of the control plane's table after them.
    const userWanted = wanted.filter((n) => n.driver !== "overlay");
    const overlayWanted = wanted.filter((n) => n.driver === "overlay");
    if (userWanted.length && !user)
      throw new NotSupportedError("user-defined networks are not available on this agent", { field: "NetworkMode" });
    if (overlayWanted.length && !network.overlay)
      throw new NotSupportedError("overlay networks are not available on this agent", { field: "NetworkingConfig.EndpointsConfig" });
    const first = c.networkMode === "user" ? 0 : 1;
    // Addresses first: published ports of a "user" container lead to its primary address.
    const planned = userWanted.length ? await user!.allocate(c.id, c.name.slice(1), userWanted, first) : [];
    try {
      const primary = planned[0];
      const a = await network.attach(c.id, {
        mode: c.networkMode,
        ports: toPortMappings(c.ports),
        ...(c.networkMode === "user" ? { ipAddress: primary!.ipAddress } : {}),
      });
      try {
        const attached = userWanted.length ? await user!.plug(c.id, a.netnsPath!, c.networkMode === "user") : [];
        const main = c.networkMode === "user" ? attached[0]! : a;
        const overlay = overlayWanted.length
          ? await network.overlay!.plug(c.id, a.netnsPath!, overlayWanted, first + userWanted.length, {
              ip: main.ipAddress,
              dns: c.networkMode === "bridge",
            })
          : [];
        const info: NetworkInfo = {
          mode: c.networkMode,
          ipAddress: main.ipAddress,
          gateway: main.gateway,
          macAddress: main.macAddress,
          prefixLen: main.prefixLen,
          ports: fromPortMappings(a.ports),
          user: [...attached, ...overlay],
          ...(a.netnsPath ? { netnsPath: a.netnsPath } : {}),
        };
        return { netns: a.netnsPath ?? "new", info };
      } catch (e) {
        await network.detach(c.id).catch(() => {});
        throw e;
      }
    } catch (e) {
      if (planned.length) await user!.release(c.id).catch(() => {});
      if (overlayWanted.length) await network.overlay?.release(c.id).catch(() => {});
      throw e;
    }
  }

  /** Runs the container; throws an HTTP-mapped error (with exitCode) when it cannot start. */
  async run(c: ContainerRecord, opts: { attachWait?: boolean } = {}): Promise<Started> {
    const paths = this.deps.store.paths(c.id);
    const image = await this.deps.images.resolve(c.imageId);
    const user = await resolveUser(c.config.User, [paths.upper, ...image.lowerDirs]);
    const mounts = await this.mounts(c);
    // The upper dir's own mode is the container's "/" (overlayfs takes a merged directory's
    // attributes from its upper): 0755 as in an image, or only root could walk the rootfs.
    await fs.mkdir(paths.upper, { recursive: true, mode: 0o755 });
    await fs.chmod(paths.upper, 0o755);
    for (const d of [paths.work, paths.etc]) await fs.mkdir(d, { recursive: true, mode: 0o700 });
    const net = await this.attach(c);
    try {
      const hc = c.hostConfig;
      const names = { dns: hc.Dns ?? [], dnsSearch: hc.DnsSearch ?? [], dnsOptions: hc.DnsOptions ?? [], extraHosts: hc.ExtraHosts ?? [] };
      const etcFiles = await writeEtcFiles(
        paths.etc,
        c.config.Hostname,
        net.info?.ipAddress ?? "",
        c.networkMode !== "host",
        names,
        // Embedded DNS (127.0.0.11): user networks', or the overlay names' server on the default bridge.
        net.info?.mode === "user" || (c.networkMode === "bridge" && !!c.networks?.some((n) => n.driver === "overlay")),
      );
      const args = shimRunArgs({
        record: c,
        paths,
        lowerDirs: image.lowerDirs,
        hostname: c.config.Hostname,
        netns: net.netns,
        user,
        mounts,
        etcFiles,
        attachWait: opts.attachWait,
      });
      const state = await shimRun(this.deps.shimPath, args);
      return { state, network: net.info };
    } catch (err) {
      if (net.info) {
        await this.deps.network?.detach(c.id).catch(() => {});
        if (net.info.user?.length) await this.deps.network?.user?.release(c.id).catch(() => {});
        if (c.networks?.some((n) => n.driver === "overlay")) await this.deps.network?.overlay?.release(c.id).catch(() => {});
      }
      if (err instanceof ShimRunError) throw startError(err, c.path);
      throw err;
    }
  }
}
