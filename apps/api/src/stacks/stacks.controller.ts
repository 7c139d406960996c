import { Body, Controller, Delete, Get, HttpCode, Param, Post, Req } from "@nestjs/common";
import type { FastifyRequest } from "fastify";
import { ApiBearerAuth, ApiBody, ApiOperation, ApiParam, ApiTags } from "@nestjs/swagger";
import type { ServiceView, TaskView } from "@flotilla/api-types";
import { z } from "zod";
import { ZodValidationPipe } from "../common/zod-validation.pipe";
import { callerOf } from "../services/services.controller";
import { StacksService, type StackDeployResult, type StackView } from "./stacks.service";

const stringMap = z.record(z.string(), z.string());
const DeployBody = z
  .object({
    name: z.string().min(1),
    compose: z.string().min(1),
    env: stringMap.optional(),
    dotenv: z.string().optional(),
    envFiles: stringMap.optional(),
    prune: z.boolean().optional(),
  })
  .strict();

const NAME = { name: "name", description: "stack name" };

@ApiTags("stacks")
@ApiBearerAuth()
@Controller("api/v1/stacks")
export class StacksController {
  constructor(private readonly stacks: StacksService) {}

  @Post()
  @HttpCode(200)
  @ApiOperation({
    summary: "Deploy a compose file as a stack: services named NAME_SERVICE are created, or updated only where the file changed",
    description:
      "The file is checked against the Compose specification's schema (unknown keys are reported with their path) and keys services do not support yet are refused by path; top-level networks are the stack's overlay networks (NAME_KEY, created first, removed with the stack; `external: true` names an existing one, and a service may name only declared networks; one that names none joins NAME_default, as with docker; each service has its key in the file as an alias on its networks, so siblings reach it by that short name); secrets and configs must be external (created beforehand) and exist; nothing is created when anything is refused. `env` holds the variables the file interpolates, `dotenv` the text of its .env, `envFiles` the text of each env_file by its path; `prune` removes the stack's services the file no longer has.",
  })
  @ApiBody({
    schema: {
      type: "object",
      required: ["name", "compose"],
      properties: {
        name: { type: "string", example: "shop" },
        compose: { type: "string", example: "services:\n  web:\n    image: nginx\n    ports: ['8080:80']\n" },
        env: { type: "object", additionalProperties: { type: "string" } },
        dotenv: { type: "string" },
        envFiles: { type: "object", additionalProperties: { type: "string" } },
        prune: { type: "boolean" },
      },
    },
  })
  deploy(
    @Req() req: FastifyRequest,
    @Body(new ZodValidationPipe(DeployBody)) body: z.infer<typeof DeployBody>,
  ): Promise<StackDeployResult> {
    return this.stacks.deploy(body, callerOf(req));
  }

  @Get()
  @ApiOperation({ summary: "List stacks (services grouped by their com.docker.stack.namespace label)" })
  list(): Promise<StackView[]> {
    return this.stacks.list();
  }

  @Get(":name/services")
  @ApiParam(NAME)
  @ApiOperation({ summary: "The stack's services" })
  services(@Param("name") name: string): Promise<ServiceView[]> {
    return this.stacks.servicesOrThrow(name);
  }

  @Get(":name/tasks")
  @ApiParam(NAME)
  @ApiOperation({ summary: "The tasks of the stack's services" })
  tasks(@Param("name") name: string): Promise<TaskView[]> {
    return this.stacks.tasksOf(name);
  }

  @Delete(":name")
  @HttpCode(200)
  @ApiParam(NAME)
  @ApiOperation({ summary: "Remove every service of the stack, then its own networks (not external ones)" })
  async remove(@Param("name") name: string): Promise<{ removed: string[]; networksRemoved: string[] }> {
    const { services, networks } = await this.stacks.remove(name);
    return { removed: services, networksRemoved: networks };
  }
}
