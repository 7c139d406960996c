/** `error` values the API uses, with their HTTP status in the comment. */
export type ApiErrorKind =
  | "invalid" // 400, details.field names the field
  | "unauthorized" // 401
  | "forbidden" // 403
  | "not_found" // 404
  | "method_not_allowed" // 405
  | "conflict" // 409
  | "payload_too_large" // 413
  | "unsupported_media_type" // 415
  | "internal" // 500
  | "not_supported" // 501
  | "unavailable"; // 503

/** The one shape of every API error: clients show `message` as is. */
export interface ApiErrorBody {
  error: ApiErrorKind | (string & {});
  message: string;
  details?: Record<string, unknown>;
}
