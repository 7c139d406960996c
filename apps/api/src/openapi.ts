import type { NestFastifyApplication } from "@nestjs/platform-fastify";
import { DocumentBuilder, SwaggerModule, type OpenAPIObject } from "@nestjs/swagger";
import { VERSION } from "./version";

export function buildOpenApi(app: NestFastifyApplication): OpenAPIObject {
  const config = new DocumentBuilder()
    .setTitle("Flotilla API")
    .setDescription(
      "Control plane of Flotilla: machines, nodes, services and tasks. Every endpoint except health and " +
        "POST /api/v1/nodes/join (which takes a one-time join token) needs `Authorization: Bearer <token>`; " +
        "agent-role tokens may only send their own node's heartbeats. " +
        "Errors are `{ error, message, details }` with 400/401/403/404/409/501/503. " +
        "While Postgres or Redis is unreachable, requests answer 503 naming it: a change Postgres took but Redis could not queue " +
        "is saved and rolls out when Redis returns; a change Postgres could not take changed nothing. " +
        "Every answer carries `Server-Timing: app;dur=<ms>`, the API's own time over the request.",
    )
    .setVersion(VERSION)
    .addBearerAuth()
    .build();
  return SwaggerModule.createDocument(app, config);
}

/** The document at /api/docs (UI) and /api/docs-json. */
export function setupOpenApi(app: NestFastifyApplication): void {
  SwaggerModule.setup("api/docs", app, () => buildOpenApi(app), { jsonDocumentUrl: "api/docs-json" });
}
