// Serves the web console at `/`: its files, and index.html for its routes, so a deep link such as
// /services/web survives a reload. /api stays the API's: an unknown /api path still gets the API's
// JSON 404. Left out of OpenAPI, which documents the REST API only.
import { Controller, Get, Inject, Req, Res } from "@nestjs/common";
import { ApiExcludeController } from "@nestjs/swagger";
import type { FastifyReply, FastifyRequest } from "fastify";
import { Public } from "../auth/auth.guard";
import { APP_CONFIG, type AppConfig } from "../config/config";
import { ReplicaUrls } from "../health/replica-urls";
import { ConsoleFiles } from "./console-files";

@ApiExcludeController()
@Public()
@Controller()
export class ConsoleController {
  private readonly files: ConsoleFiles;

  constructor(@Inject(APP_CONFIG) config: AppConfig, @Inject(ReplicaUrls) replicas: ReplicaUrls) {
    // The configured replicas and those installed on manager machines, as last read.
    this.files = new ConsoleFiles(config.consoleDir, () => replicas.origins());
  }

  @Get()
  root(@Req() req: FastifyRequest, @Res() reply: FastifyReply): Promise<void> {
    return this.send(req, reply);
  }

  @Get("*")
  any(@Req() req: FastifyRequest, @Res() reply: FastifyReply): Promise<void> {
    return this.send(req, reply);
  }

  private async send(req: FastifyRequest, reply: FastifyReply): Promise<void> {
    const path = req.url.split("?")[0];
    if (path === "/api" || path.startsWith("/api/")) {
      // The wildcard is only a fallback: hand API paths back to Fastify's not-found handler,
      // which Nest owns and which answers as before.
      reply.callNotFound();
      return;
    }
    const answer = await this.files.answer(path, req.headers["if-none-match"]);
    await reply.status(answer.status).headers(answer.headers).send(answer.body);
  }
}
