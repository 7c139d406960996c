/**
 * Failures of the engine's own operations that carry the Engine API's answer with them, for the
 * cases no domain error of @flotilla/core covers. Domain code throws them; the HTTP layer
 * (api/http-util.ts) maps them to responses, so the domain never imports the HTTP layer.
 */

/** 304 for start of a running or stop of a stopped container, as dockerd answers. */
export class NotModifiedError extends Error {}

/** An HTTP status with Docker's message, for cases no domain error covers. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}
