// The agent's image store: OCI distribution pulls, content-addressed layers, overlay lowerdirs.
export { ImageStore } from "./image-store";
export type { ImageStoreOptions, InUsePredicate, RemoveOptions, RemoveResult, ResolvedImage } from "./image-store";
export type { PullOptions, PullResult } from "./pull";
export type { ProgressListener, ProgressMessage } from "./progress";
export type { ImageInspect, ImageInspectConfig, ImageSummary } from "./docker-shapes";
export type { ContainerDefaults } from "./media-types";
export type { Credentials } from "./registry-client";
export type { Platform } from "./platform";
export { hostPlatform, parsePlatform } from "./platform";
export { parseReference, familiarReference, canonicalReference, type ImageReference } from "./reference";
export {
  DigestMismatchError,
  ImageConflictError,
  ImageNotFoundError,
  LayerInvalidError,
  ManifestUnknownError,
  NoMatchingManifestError,
  PullAccessDeniedError,
  RegistryUnavailableError,
} from "./errors";
