import { Body, Controller, HttpCode, Post, Req } from "@nestjs/common";
import type { FastifyRequest } from "fastify";
import { ApiBearerAuth, ApiBody, ApiOkResponse, ApiOperation, ApiTags } from "@nestjs/swagger";
import { ZodValidationPipe } from "../common/zod-validation.pipe";
import { HeartbeatBody, HeartbeatsService, type HeartbeatReply } from "./heartbeats.service";

// Authentication: a bearer token. Provisioned agents use the `agent`-role token they got by
// trading their one-time join token (POST /api/v1/nodes/join), valid for their own hostname only.
@ApiTags("nodes")
@ApiBearerAuth()
@Controller("api/v1/nodes")
export class HeartbeatsController {
  constructor(private readonly heartbeats: HeartbeatsService) {}

  @Post("heartbeat")
  @HttpCode(200)
  @ApiOperation({
    summary: "Agent heartbeat (every FLOTILLA_HEARTBEAT_MS): registers the node on first contact and reports its containers",
  })
  @ApiBody({
    schema: {
      type: "object",
      required: ["hostname", "engineUrl", "resources", "containers"],
      properties: {
        nodeId: { type: "string", format: "uuid" },
        hostname: { type: "string", example: "devdays" },
        engineUrl: {
          type: "string",
          example: "https://198.18.0.3:2376",
          description:
            "where the agent's Engine API answers. The control plane dials a machine's node at the machine's address on port 2376 whatever this says; for a node without a machine it is used only when the heartbeat comes with an admin token",
        },
        resources: { type: "object", properties: { nanoCpus: { type: "integer" }, memoryBytes: { type: "integer" } } },
        labels: { type: "object", additionalProperties: { type: "string" } },
        ingressVersion: {
          type: "string",
          description: "version of the ingress table the agent applied last; the reply has `ingress` only when it changed",
        },
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
  @ApiOkResponse({
    description: "The node's id, the heartbeat period, and the routing mesh's table when the agent's is out of date",
    schema: {
      type: "object",
      required: ["nodeId", "heartbeatMs"],
      properties: {
        nodeId: { type: "string", format: "uuid" },
        heartbeatMs: { type: "integer" },
        ingress: {
          type: "object",
          properties: {
            version: { type: "string" },
            ports: {
              type: "array",
              items: {
                type: "object",
                properties: {
                  port: { type: "integer", example: 8080 },
                  protocol: { enum: ["tcp"] },
                  serviceId: { type: "string", format: "uuid" },
                  serviceName: { type: "string" },
                  traffic: { enum: ["local"], description: "absent: any task answers; local: only the receiving node's own tasks" },
                  backends: {
                    type: "array",
                    items: { type: "object", properties: { host: { type: "string" }, port: { type: "integer" } } },
                  },
                },
              },
            },
          },
        },
      },
    },
  })
  beat(
    @Body(new ZodValidationPipe(HeartbeatBody)) body: HeartbeatBody,
    @Req() req: FastifyRequest & { tokenRole?: string },
  ): Promise<HeartbeatReply> {
    // An agent token's engineUrl is never where the control plane dials (libs/core engineUrlFor).
    return this.heartbeats.beat(body, { admin: req.tokenRole === "admin" });
  }
}
