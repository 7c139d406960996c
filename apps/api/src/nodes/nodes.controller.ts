import { Body, Controller, Delete, Get, HttpCode, Param, Patch, Query, Req, Res } from "@nestjs/common";
import type { FastifyReply, FastifyRequest } from "fastify";
import { ApiListing, sendListing } from "../common/listing";
import { ApiUnavailable } from "../common/api-unavailable";
import { ApiBearerAuth, ApiBody, ApiOperation, ApiParam, ApiQuery, ApiTags } from "@nestjs/swagger";
import { z } from "zod";
import { ZodValidationPipe } from "../common/zod-validation.pipe";
import type { NodeView } from "@flotilla/api-types";
import { NodesService } from "./nodes.service";

const UpdateNodeBody = z
  .object({
    availability: z.enum(["active", "pause", "drain"]).optional(),
    role: z.enum(["manager", "worker"]).optional(),
    labelAdd: z.record(z.string().min(1), z.string()).optional(),
    labelRm: z.array(z.string().min(1)).optional(),
  })
  .strict();

const REF = { name: "id", description: "node id or hostname" };

@ApiTags("nodes")
@ApiBearerAuth()
@Controller("api/v1/nodes")
export class NodesController {
  constructor(private readonly nodes: NodesService) {}

  @Get()
  @ApiOperation({ summary: "List nodes with status, availability and live task counts" })
  @ApiListing()
  async list(@Req() req: FastifyRequest, @Res({ passthrough: true }) reply: FastifyReply): Promise<Buffer | string> {
    return sendListing(req, reply, await this.nodes.listing());
  }

  @Get(":id")
  @ApiParam(REF)
  @ApiOperation({ summary: "Inspect a node" })
  get(@Param("id") id: string): Promise<NodeView> {
    return this.nodes.get(id);
  }

  @Patch(":id")
  @ApiParam(REF)
  @ApiOperation({
    summary:
      "Set availability (drain moves tasks away, pause takes no new ones), the role (placement constraints on node.role follow it; tasks that no longer fit move) and edit labels",
  })
  @ApiBody({
    schema: {
      type: "object",
      properties: {
        availability: { enum: ["active", "pause", "drain"] },
        role: { enum: ["manager", "worker"] },
        labelAdd: { type: "object", additionalProperties: { type: "string" }, example: { zone: "a" } },
        labelRm: { type: "array", items: { type: "string" } },
      },
    },
  })
  @ApiUnavailable()
  update(@Param("id") id: string, @Body(new ZodValidationPipe(UpdateNodeBody)) body: z.infer<typeof UpdateNodeBody>): Promise<NodeView> {
    return this.nodes.update(id, body);
  }

  @Delete(":id")
  @HttpCode(204)
  @ApiParam(REF)
  @ApiQuery({ name: "force", required: false, description: "1/true: remove even if the node is up" })
  @ApiOperation({ summary: "Remove a node (409 unless it is down, or forced); its tasks are replaced elsewhere" })
  @ApiUnavailable()
  async remove(@Param("id") id: string, @Query("force") force?: string): Promise<void> {
    await this.nodes.remove(id, force === "1" || force === "true");
  }
}
