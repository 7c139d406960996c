import { Body, Controller, Delete, Get, HttpCode, Param, Patch, Post, Query, Req, Res, StreamableFile } from "@nestjs/common";
import { ApiUnavailable } from "../common/api-unavailable";
import { ApiBearerAuth, ApiBody, ApiCreatedResponse, ApiOkResponse, ApiOperation, ApiParam, ApiQuery, ApiTags } from "@nestjs/swagger";
import { InvalidError } from "@flotilla/core";
import type { FastifyReply, FastifyRequest } from "fastify";
import { ApiListing, sendListing } from "../common/listing";
import { z } from "zod";
import { ZodValidationPipe } from "../common/zod-validation.pipe";
import { LogsService } from "./logs.service";
import { CreateServiceBody, ScaleBody, SERVICE_BODY_SCHEMA, SERVICE_PATCH_SCHEMA, UpdateServiceBody } from "./service-schemas";
import type { ServiceView } from "@flotilla/api-types";
import { ServicesService, type Caller } from "./services.service";

const REF = { name: "id", description: "service id or name" };

/** The caller as the bearer guard identified it. */
export const callerOf = (req: FastifyRequest & { tokenRole?: string }): Caller => ({ admin: req.tokenRole === "admin" });

@ApiTags("services")
@ApiBearerAuth()
@Controller("api/v1/services")
export class ServicesController {
  constructor(
    private readonly services: ServicesService,
    private readonly logs: LogsService,
  ) {}

  @Post()
  @ApiOperation({ summary: "Create a service; its tasks are scheduled by the reconcile worker" })
  @ApiBody({ schema: SERVICE_BODY_SCHEMA })
  @ApiCreatedResponse({ description: "the service, version 1" })
  @ApiUnavailable()
  create(@Req() req: FastifyRequest, @Body(new ZodValidationPipe(CreateServiceBody)) body: CreateServiceBody): Promise<ServiceView> {
    return this.services.create(body, callerOf(req));
  }

  @Get()
  @ApiOperation({ summary: "List services with running/desired task counts" })
  @ApiListing()
  async list(@Req() req: FastifyRequest, @Res({ passthrough: true }) reply: FastifyReply): Promise<Buffer | string> {
    return sendListing(req, reply, await this.services.listing());
  }

  @Get(":id")
  @ApiParam(REF)
  @ApiOperation({ summary: "Inspect a service: spec, versions, update state, counts" })
  get(@Param("id") id: string): Promise<ServiceView> {
    return this.services.get(id);
  }

  @Patch(":id")
  @ApiParam(REF)
  @ApiOperation({ summary: "Change spec fields; a change that reaches the containers starts a rolling update, `replicas` alone scales" })
  @ApiBody({ schema: SERVICE_PATCH_SCHEMA })
  @ApiUnavailable()
  update(
    @Req() req: FastifyRequest,
    @Param("id") id: string,
    @Body(new ZodValidationPipe(UpdateServiceBody)) body: UpdateServiceBody,
  ): Promise<ServiceView> {
    const action = body.replicas !== undefined && Object.keys(body).length === 1 ? "scale" : "update";
    return this.services.update(id, body, callerOf(req), action);
  }

  @Post(":id/scale")
  @HttpCode(200)
  @ApiParam(REF)
  @ApiOperation({ summary: "Set the number of replicas (replicated services)" })
  @ApiBody({ schema: { type: "object", required: ["replicas"], properties: { replicas: { type: "integer", example: 5 } } } })
  @ApiUnavailable()
  scale(
    @Req() req: FastifyRequest,
    @Param("id") id: string,
    @Body(new ZodValidationPipe(ScaleBody)) body: z.infer<typeof ScaleBody>,
  ): Promise<ServiceView> {
    return this.services.scale(id, body.replicas, callerOf(req));
  }

  @Post(":id/rollback")
  @HttpCode(200)
  @ApiParam(REF)
  @ApiOperation({ summary: "Return to the previous spec (as a new version), with the rollback config" })
  @ApiUnavailable()
  rollback(@Param("id") id: string): Promise<ServiceView> {
    return this.services.rollback(id);
  }

  @Delete(":id")
  @HttpCode(204)
  @ApiParam(REF)
  @ApiOperation({ summary: "Remove a service; its containers are stopped and removed" })
  @ApiUnavailable()
  async remove(@Param("id") id: string): Promise<void> {
    await this.services.remove(id);
  }

  @Get(":id/logs")
  @ApiParam(REF)
  @ApiQuery({ name: "follow", required: false, description: "1/true: keep streaming until the client disconnects" })
  @ApiQuery({ name: "tail", required: false, description: "last N lines per task" })
  @ApiOkResponse({ description: "text/plain, one line per log line, prefixed `web.1@node | `" })
  @ApiOperation({
    summary:
      "Logs of every task of the service: finished tasks' kept logs (the last 256 KiB each, until the task is pruned) first, then the live containers', merged from the agents",
  })
  async logsOf(
    @Param("id") id: string,
    @Req() req: FastifyRequest,
    @Query("follow") follow?: string,
    @Query("tail") tail?: string,
  ): Promise<StreamableFile> {
    if (tail !== undefined && !/^\d+$/.test(tail))
      throw new InvalidError("invalid tail: must be a whole number of lines", { field: "tail" });
    const ac = new AbortController();
    req.raw.on("close", () => ac.abort());
    const stream = await this.logs.stream(id, {
      follow: follow === "1" || follow === "true",
      ...(tail !== undefined ? { tail: Number(tail) } : {}),
      signal: ac.signal,
    });
    return new StreamableFile(stream, { type: "text/plain; charset=utf-8" });
  }
}
