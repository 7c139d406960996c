/**
 * The image store's errors. They are the typed errors of @flotilla/core, so the agent maps them to
 * Docker's status codes by kind; the messages follow Docker's wording where the CLI user knows it.
 */
import { ConflictError, InvalidError, NotFoundError, UnavailableError } from "@flotilla/core";

/** The registry has no manifest for this tag or digest (Docker: 404). */
export class ManifestUnknownError extends NotFoundError {
  constructor(reference: string) {
    super("manifest", reference);
    this.message = `manifest unknown: ${reference}`;
  }
}

/**
 * The registry refused us even after authenticating. Registries answer "denied" for repositories
 * that do not exist too, so Docker reports it as not found; so do we.
 */
export class PullAccessDeniedError extends NotFoundError {
  constructor(repository: string, reason?: string) {
    super("repository", repository);
    this.message = `pull access denied for ${repository}, repository does not exist or may require 'docker login'${reason ? `: ${reason}` : ""}`;
  }
}

/** A name or ID with no local image (Docker: 404 "No such image"). */
export class ImageNotFoundError extends NotFoundError {
  constructor(nameOrId: string) {
    super("image", nameOrId);
    this.message = `No such image: ${nameOrId}`;
  }
}

/** A multi-platform image without an entry for the platform we run on. */
export class NoMatchingManifestError extends NotFoundError {
  constructor(reference: string, platform: string) {
    super("manifest", reference, { platform });
    this.message = `no matching manifest for ${platform} in the manifest list entries: ${reference}`;
  }
}

/** Removing an image that a container uses, or one with several names, without force. */
export class ImageConflictError extends ConflictError {}

/** Content whose sha256 is not the digest it was asked for: a corrupt or lying registry. */
export class DigestMismatchError extends Error {
  constructor(
    readonly what: string,
    readonly expected: string,
    readonly actual: string,
  ) {
    super(`digest mismatch for ${what}: expected ${expected}, got ${actual}`);
    this.name = "DigestMismatchError";
  }
}

/** A layer that cannot be applied safely: path traversal, links out of the layer, bad tar. */
export class LayerInvalidError extends InvalidError {
  constructor(layer: string, problem: string) {
    super(`layer ${layer}: ${problem}`, { layer });
  }
}

/** Network or TLS trouble reaching a registry; `details.registry` names it. */
export class RegistryUnavailableError extends UnavailableError {
  constructor(registry: string, problem: string) {
    super(`registry ${registry}: ${problem}`, { registry });
  }
}
