/**
 * Typed domain errors. Adapters map them to their transport (HTTP status, exit code, Docker error);
 * the kind, not the message text, decides the mapping.
 */
export type DomainErrorKind = "not_found" | "conflict" | "invalid" | "not_supported" | "unavailable";

export class DomainError extends Error {
  constructor(
    readonly kind: DomainErrorKind,
    message: string,
    readonly details: Record<string, unknown> = {},
  ) {
    super(message);
    this.name = new.target.name;
  }
}

export class NotFoundError extends DomainError {
  constructor(what: string, id: string, details: Record<string, unknown> = {}) {
    super("not_found", `${what} not found: ${id}`, { [what]: id, ...details });
  }
}

export class ConflictError extends DomainError {
  constructor(message: string, details: Record<string, unknown> = {}) {
    super("conflict", message, details);
  }
}

/** Input the user can fix. `details.field` names the offending field where there is one. */
export class InvalidError extends DomainError {
  constructor(message: string, details: Record<string, unknown> = {}) {
    super("invalid", message, details);
  }
}

export class NotSupportedError extends DomainError {
  constructor(message: string, details: Record<string, unknown> = {}) {
    super("not_supported", message, details);
  }
}

/** A dependency (database, queue, agent) could not be reached. */
export class UnavailableError extends DomainError {
  constructor(message: string, details: Record<string, unknown> = {}) {
    super("unavailable", message, details);
  }
}
