/**
 * Store records rendered in the shapes of the Docker Engine API: GET /images/json (summary) and
 * GET /images/{name}/json (inspect). Pure.
 */
import type { ImageRecord } from "./image-index";
import type { ContainerDefaults, ImageConfigJson } from "./media-types";
import { familiarize } from "./reference";

/** One element of GET /images/json. */
export interface ImageSummary {
  Id: string;
  ParentId: string;
  RepoTags: string[];
  RepoDigests: string[];
  /** Unix seconds. */
  Created: number;
  Size: number;
  /** Pre-1.44 clients read this instead of Size. */
  VirtualSize: number;
  SharedSize: number;
  Labels: Record<string, string> | null;
  Containers: number;
}

/** The `Config` object of GET /images/{name}/json. */
export interface ImageInspectConfig {
  Hostname: string;
  Domainname: string;
  User: string;
  AttachStdin: boolean;
  AttachStdout: boolean;
  AttachStderr: boolean;
  ExposedPorts?: Record<string, object>;
  Tty: boolean;
  OpenStdin: boolean;
  StdinOnce: boolean;
  Env: string[] | null;
  Cmd: string[] | null;
  Image: string;
  Volumes: Record<string, object> | null;
  WorkingDir: string;
  Entrypoint: string[] | null;
  OnBuild: string[] | null;
  Labels: Record<string, string> | null;
  StopSignal?: string;
  Healthcheck?: unknown;
  Shell?: string[];
}

/** GET /images/{name}/json. */
export interface ImageInspect {
  Id: string;
  RepoTags: string[];
  RepoDigests: string[];
  Parent: string;
  Comment: string;
  /** RFC 3339. */
  Created: string;
  DockerVersion: string;
  Author: string;
  Config: ImageInspectConfig;
  Architecture: string;
  Variant?: string;
  Os: string;
  Size: number;
  VirtualSize: number;
  GraphDriver: { Name: string; Data: Record<string, string> };
  RootFS: { Type: string; Layers: string[] };
  Metadata: { LastTagTime: string };
}

const ZERO_TIME = "0001-01-01T00:00:00Z";

function createdSeconds(created: string): number {
  const ms = Date.parse(created);
  return Number.isFinite(ms) ? Math.floor(ms / 1000) : 0;
}

/** Canonical tags → Docker's familiar `busybox:latest`; repo digests likewise. */
export function familiarNames(names: readonly string[]): string[] {
  return names.map(familiarize);
}

/** GET /images/json element. Container counts are not tracked here, so -1 ("not computed"). */
export function toImageSummary(record: ImageRecord, config: ImageConfigJson, tags: readonly string[]): ImageSummary {
  return {
    Id: record.id,
    ParentId: "",
    RepoTags: familiarNames(tags),
    RepoDigests: familiarNames(record.repoDigests),
    Created: createdSeconds(record.created),
    Size: record.size,
    VirtualSize: record.size,
    SharedSize: -1,
    Labels: config.config?.Labels ?? null,
    Containers: -1,
  };
}

/** The image's run defaults with Docker's empty values filled in. */
export function inspectConfig(defaults: ContainerDefaults | undefined): ImageInspectConfig {
  const c = defaults ?? {};
  return {
    Hostname: "",
    Domainname: "",
    User: c.User ?? "",
    AttachStdin: false,
    AttachStdout: false,
    AttachStderr: false,
    ...(c.ExposedPorts ? { ExposedPorts: c.ExposedPorts } : {}),
    Tty: false,
    OpenStdin: false,
    StdinOnce: false,
    Env: c.Env ?? null,
    Cmd: c.Cmd ?? null,
    Image: "",
    Volumes: c.Volumes ?? null,
    WorkingDir: c.WorkingDir ?? "",
    Entrypoint: c.Entrypoint ?? null,
    OnBuild: c.OnBuild ?? null,
    Labels: c.Labels ?? null,
    ...(c.StopSignal ? { StopSignal: c.StopSignal } : {}),
    ...(c.Healthcheck ? { Healthcheck: c.Healthcheck } : {}),
    ...(c.Shell ? { Shell: c.Shell } : {}),
  };
}

/** GET /images/{name}/json. `lowerDirs` topmost first, as resolve() returns them. */
export function toImageInspect(
  record: ImageRecord,
  config: ImageConfigJson,
  tags: readonly string[],
  lowerDirs: readonly string[],
): ImageInspect {
  return {
    Id: record.id,
    RepoTags: familiarNames(tags),
    RepoDigests: familiarNames(record.repoDigests),
    Parent: "",
    Comment: config.comment ?? "",
    Created: record.created || ZERO_TIME,
    DockerVersion: config.docker_version ?? "",
    Author: config.author ?? "",
    Config: inspectConfig(config.config),
    Architecture: config.architecture,
    ...(config.variant ? { Variant: config.variant } : {}),
    Os: config.os,
    Size: record.size,
    VirtualSize: record.size,
    GraphDriver: { Name: "overlay", Data: { LowerDir: lowerDirs.join(":") } },
    RootFS: { Type: "layers", Layers: config.rootfs.diff_ids },
    Metadata: { LastTagTime: record.lastTagTime ?? ZERO_TIME },
  };
}
