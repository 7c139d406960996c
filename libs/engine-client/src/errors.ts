// Typed errors of the Engine API client. Callers decide by class (a missing container is not an
// unreachable agent), and every message names the operation and the agent it was sent to.

/** The agent answered with an error status. */
export class EngineError extends Error {
  constructor(
    /** What was attempted: "create container web.1", "pull busybox:latest". */
    readonly operation: string,
    /** The HTTP status the agent answered with. */
    readonly status: number,
    message: string,
  ) {
    super(`${operation}: ${message} (HTTP ${status})`);
    this.name = new.target.name;
  }
}

/** 404: no such container or image. */
export class EngineNotFoundError extends EngineError {}

/** 409: a name already taken, a container still running when removed. */
export class EngineConflictError extends EngineError {}

/** The agent could not be reached at all (refused, timed out, TLS failure). */
export class EngineUnreachableError extends Error {
  constructor(
    readonly operation: string,
    readonly url: string,
    override readonly cause: unknown,
  ) {
    super(`${operation}: agent at ${url} unreachable: ${(cause as { code?: string })?.code ?? (cause as Error)?.message ?? String(cause)}`);
    this.name = "EngineUnreachableError";
  }
}

/** Builds the right error class for an error status. */
export function engineError(operation: string, status: number, message: string): EngineError {
  if (status === 404) return new EngineNotFoundError(operation, status, message);
  if (status === 409) return new EngineConflictError(operation, status, message);
  return new EngineError(operation, status, message);
}
