// Secrets and configs: the rules users meet, written once for the API and ctl. Both are
// immutable named blobs; a secret's value never leaves the control plane again after creation
// (except to the tasks that use it), a config's may be read back.
import { InvalidError } from "./errors";

export type SecretKind = "secret" | "config";

/** Swarm's limit: a value is a file in a tmpfs, not a data store. */
export const MAX_SECRET_BYTES = 500 * 1024;

/** Docker's rule for secret and config names: letters and digits at both ends, `-_.` inside, at most 64. */
const NAME = /^[a-zA-Z0-9](?:[a-zA-Z0-9_.-]{0,62}[a-zA-Z0-9])?$/;

/** Checks a secret's or config's name; returns it. */
export function validateSecretName(kind: SecretKind, name: unknown): string {
  if (typeof name !== "string" || !NAME.test(name)) {
    throw new InvalidError(
      `invalid ${kind} name ${JSON.stringify(name)}: 1 to 64 letters, digits, _ . or -, starting and ending with a letter or digit`,
      { field: "name" },
    );
  }
  return name;
}

/**
 * Checks a value's size (bytes). The value itself is never put into the error: an error may be
 * logged or shown, and a secret must not be.
 */
export function validateSecretSize(kind: SecretKind, bytes: number): void {
  if (bytes === 0) throw new InvalidError(`${kind} data must not be empty`, { field: "data" });
  if (bytes > MAX_SECRET_BYTES) {
    throw new InvalidError(`${kind} data is ${bytes} bytes, more than the limit of ${MAX_SECRET_BYTES} bytes (500 KiB)`, {
      field: "data",
    });
  }
}
