import { Controller, Get, Param, Query, Req, Res } from "@nestjs/common";
import type { FastifyReply, FastifyRequest } from "fastify";
import { ApiListing, sendListing } from "../common/listing";
import { ApiBearerAuth, ApiOperation, ApiQuery, ApiTags } from "@nestjs/swagger";
import { z } from "zod";
import { ZodValidationPipe } from "../common/zod-validation.pipe";
import type { TaskView } from "@flotilla/api-types";
import { TaskQuery } from "../services/service-schemas";
import { TasksService } from "./tasks.service";

@ApiTags("tasks")
@ApiBearerAuth()
@Controller("api/v1/tasks")
export class TasksController {
  constructor(private readonly tasks: TasksService) {}

  @Get()
  @ApiOperation({ summary: "List tasks, newest first within each slot" })
  @ApiQuery({ name: "service", required: false, description: "service id or name" })
  @ApiQuery({ name: "node", required: false, description: "node id or hostname" })
  @ApiQuery({ name: "desired-state", required: false, enum: ["running", "shutdown"] })
  @ApiListing()
  async list(
    @Query(new ZodValidationPipe(TaskQuery)) q: z.infer<typeof TaskQuery>,
    @Req() req: FastifyRequest,
    @Res({ passthrough: true }) reply: FastifyReply,
  ): Promise<Buffer | string> {
    const listing = await this.tasks.listing({
      ...(q.service ? { service: q.service } : {}),
      ...(q.node ? { node: q.node } : {}),
      ...(q["desired-state"] ? { desiredState: q["desired-state"] } : {}),
    });
    return sendListing(req, reply, listing);
  }

  @Get(":id")
  @ApiOperation({ summary: "Inspect a task" })
  get(@Param("id") id: string): Promise<TaskView> {
    return this.tasks.get(id);
  }
}
