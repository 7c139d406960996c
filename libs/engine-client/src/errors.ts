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

  /**
   * Whether the request certainly never reached the agent: no connection (refused, no route, no
   * such host or socket) or a TLS handshake refused before anything was sent. A timeout or a
   * connection lost later leaves the outcome unknown: the agent may have acted on it.
   */
  get notDelivered(): boolean {
    const code = (this.cause as { code?: unknown } | undefined)?.code;
    if (typeof code !== "string") return false;
    return (
      NOT_DELIVERED.has(code) ||
      /^(ERR_TLS_|ERR_SSL_|CERT_|UNABLE_TO_)/.test(code) ||
      code.endsWith("SELF_SIGNED_CERT") ||
      code === "SELF_SIGNED_CERT_IN_CHAIN"
    );
  }

  /** The connection was reset or broken under the request (a kept-alive one the agent closed, say). */
  get connectionReset(): boolean {
    const code = (this.cause as { code?: unknown } | undefined)?.code;
    return typeof code === "string" && RESET.has(code);
  }
}

/** Ways a connection ends under a request the other side may or may not have acted on. */
const RESET = new Set(["ECONNRESET", "EPIPE"]);

const NOT_DELIVERED = new Set(["ECONNREFUSED", "EHOSTUNREACH", "ENETUNREACH", "ENOTFOUND", "EAI_AGAIN", "ENOENT"]);

/** Builds the right error class for an error status. */
export function engineError(operation: string, status: number, message: string): EngineError {
  if (status === 404) return new EngineNotFoundError(operation, status, message);
  if (status === 409) return new EngineConflictError(operation, status, message);
  return new EngineError(operation, status, message);
}
