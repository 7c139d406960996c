import { ApiServiceUnavailableResponse } from "@nestjs/swagger";

/** The 503 every change may answer while Postgres or Redis is unreachable (common/unavailable.ts). */
export const ApiUnavailable = () =>
  ApiServiceUnavailableResponse({
    description:
      "Postgres or Redis is unreachable; `message` says which and what happened to the change: " +
      '"Postgres is unavailable: nothing was changed", or "Redis is unavailable: the change is saved and will roll out when it returns" ' +
      "(`details.dependency` is `postgres` or `redis`; `details.saved` is true in the second case)",
    schema: {
      type: "object",
      properties: {
        error: { type: "string", example: "unavailable" },
        message: { type: "string", example: "Redis is unavailable: the change is saved and will roll out when it returns" },
        details: { type: "object", properties: { dependency: { enum: ["postgres", "redis"] }, saved: { type: "boolean" } } },
      },
    },
  });
