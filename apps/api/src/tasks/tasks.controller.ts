import { Controller, Get, Param, Query } from "@nestjs/common";
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
  list(@Query(new ZodValidationPipe(TaskQuery)) q: z.infer<typeof TaskQuery>): Promise<TaskView[]> {
    return this.tasks.list({
      ...(q.service ? { service: q.service } : {}),
      ...(q.node ? { node: q.node } : {}),
      ...(q["desired-state"] ? { desiredState: q["desired-state"] } : {}),
    });
  }

  @Get(":id")
  @ApiOperation({ summary: "Inspect a task" })
  get(@Param("id") id: string): Promise<TaskView> {
    return this.tasks.get(id);
  }
}
