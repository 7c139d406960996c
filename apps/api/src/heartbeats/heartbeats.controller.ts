import { Body, Controller, HttpCode, Post } from "@nestjs/common";
import { ApiBearerAuth, ApiBody, ApiOperation, ApiTags } from "@nestjs/swagger";
import { ZodValidationPipe } from "../common/zod-validation.pipe";
import { HeartbeatBody, HeartbeatsService, type HeartbeatReply } from "./heartbeats.service";

// Authentication: the bearer API token for now. The machines issue adds per-node join tokens
// (issued at provisioning, one per agent, revocable with the node) and mTLS client identity.
@ApiTags("nodes")
@ApiBearerAuth()
@Controller("api/v1/nodes")
export class HeartbeatsController {
  constructor(private readonly heartbeats: HeartbeatsService) {}

  @Post("heartbeat")
  @HttpCode(200)
  @ApiOperation({ summary: "Agent heartbeat (every FLOTILLA_HEARTBEAT_MS): registers the node on first contact and reports its containers" })
  @ApiBody({
    schema: {
      type: "object",
      required: ["hostname", "engineUrl", "resources", "containers"],
      properties: {
        nodeId: { type: "string", format: "uuid" },
        hostname: { type: "string", example: "devdays" },
        engineUrl: { type: "string", example: "https://198.18.0.3:2376" },
        resources: { type: "object", properties: { nanoCpus: { type: "integer" }, memoryBytes: { type: "integer" } } },
        labels: { type: "object", additionalProperties: { type: "string" } },
        containers: {
          type: "array",
          items: {
            type: "object",
            properties: {
              id: { type: "string" },
              labels: { type: "object", additionalProperties: { type: "string" } },
              state: { enum: ["created", "running", "exited"] },
              exitCode: { type: "integer" },
              oomKilled: { type: "boolean" },
              startedAt: { type: "string" },
              finishedAt: { type: "string" },
            },
          },
        },
      },
    },
  })
  beat(@Body(new ZodValidationPipe(HeartbeatBody)) body: HeartbeatBody): Promise<HeartbeatReply> {
    return this.heartbeats.beat(body);
  }
}
