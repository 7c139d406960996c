import { Body, Controller, ForbiddenException, Get, HttpCode, Post, Query, Req, Res } from "@nestjs/common";
import type { FastifyReply } from "fastify";
import { InvalidError, type NodeNetworkTable } from "@flotilla/core";
import { MAX_NETWORKS_WAIT_MS, OverlayTablesService } from "../networks/overlay-tables.service";
import { NodesRepository } from "../nodes/nodes.repository";
import { IngressService, MAX_INGRESS_WAIT_MS, type IngressTable } from "../ingress/ingress.service";
import type { FastifyRequest } from "fastify";
import { ApiBearerAuth, ApiBody, ApiOkResponse, ApiOperation, ApiQuery, ApiResponse, ApiTags } from "@nestjs/swagger";
import { ZodValidationPipe } from "../common/zod-validation.pipe";
import { HeartbeatBody } from "./heartbeat-body";
import { HeartbeatsService, type HeartbeatReply } from "./heartbeats.service";

// Authentication: a bearer token. Provisioned agents use the `agent`-role token they got by
// trading their one-time join token (POST /api/v1/nodes/join), valid for their own hostname only.
@ApiTags("nodes")
@ApiBearerAuth()
@Controller("api/v1/nodes")
export class HeartbeatsController {
  constructor(
    private readonly heartbeats: HeartbeatsService,
    private readonly ingress: IngressService,
    private readonly overlay: OverlayTablesService,
    private readonly nodes: NodesRepository,
  ) {}

  @Get("networks")
  @ApiOperation({
    summary:
      "The asking node's overlay network table, as a long poll: answers at once when it differs from `version`, else when it changes, else 204 after waitMs. An agent token gets its own node's table; other tokens name the node",
  })
  @ApiQuery({ name: "version", required: false, description: "version of the table the agent applied last" })
  @ApiQuery({
    name: "waitMs",
    required: false,
    description: `how long to wait for a change, at most ${MAX_NETWORKS_WAIT_MS} (default 20000); the 204 may come up to a quarter of it early, at random, so polls started together spread out. Without version and with no wait (waitMs absent or 0), the table at once from rows read after the request; else from rows shared with the heartbeats, which every change concerning the table replaces`,
  })
  @ApiQuery({
    name: "node",
    required: false,
    description: "node id or hostname: required with a non-agent token; an agent token's own node otherwise",
  })
  @ApiResponse({
    status: 200,
    description:
      "the table (libs/core overlay-table.ts NodeNetworkTable): {version, nodeAddress, networks: [{id, name, vni, subnet, gateway, peers, endpoints, services}]}; a node without an IPv4 underlay address gets {version, networks: [], unavailable: <why>} instead",
  })
  @ApiResponse({ status: 204, description: "unchanged within waitMs" })
  async networksTable(
    @Query("version") version: string | undefined,
    @Query("waitMs") waitMs: string | undefined,
    @Query("node") node: string | undefined,
    @Req() req: FastifyRequest & { tokenName?: string; tokenRole?: string },
    @Res({ passthrough: true }) reply: FastifyReply,
  ): Promise<NodeNetworkTable | undefined> {
    const wait = waitMs === undefined ? 20_000 : Number(waitMs);
    if (!Number.isInteger(wait) || wait < 0 || wait > MAX_NETWORKS_WAIT_MS)
      throw new InvalidError(`waitMs must be a whole number from 0 to ${MAX_NETWORKS_WAIT_MS}`, { field: "waitMs", value: waitMs });
    if (version !== undefined && version.length > 200)
      throw new InvalidError("version is longer than 200 characters", { field: "version" });
    let nodeId: string;
    if (req.tokenRole === "agent") {
      // The node is the token's: an agent sees its own table only.
      const own = await this.nodes.ofAgentToken(req.tokenName ?? "");
      if (!own)
        throw new InvalidError(`no node has joined as the agent of token "${req.tokenName}" yet: send a heartbeat first`, {
          field: "node",
        });
      if (node !== undefined && node !== own.id && node !== own.hostname)
        throw new ForbiddenException(`agent token "${req.tokenName}" may read only its own node's table`);
      nodeId = own.id;
    } else {
      if (!node) throw new InvalidError("node is required (a node id or hostname) unless an agent token asks", { field: "node" });
      nodeId = (await this.nodes.find(node)).id;
    }
    // An agent whose create names a network it has not heard of asks with neither a version nor
    // a wait: the answer must hold what was written before the create was sent.
    const atOnce = !version && (waitMs === undefined || wait === 0);
    const table = atOnce ? await this.overlay.tableOf(nodeId) : await this.overlay.waitFor(nodeId, version || undefined, wait);
    if (!table) reply.status(204);
    return table;
  }

  @Get("ingress")
  @ApiOperation({
    summary:
      "The routing mesh's table, as a long poll: answers at once when it differs from `version`, else when it changes, else 204 after waitMs",
  })
  @ApiQuery({ name: "version", required: false, description: "version of the table the agent applied last" })
  @ApiQuery({
    name: "waitMs",
    required: false,
    description: `how long to wait for a change, at most ${MAX_INGRESS_WAIT_MS} (default 20000); the 204 may come up to a quarter of it early, at random, so polls started together spread out`,
  })
  @ApiResponse({ status: 200, description: "the table (the same shape as a heartbeat reply's `ingress`)" })
  @ApiResponse({ status: 204, description: "unchanged within waitMs" })
  async ingressTable(
    @Query("version") version: string | undefined,
    @Query("waitMs") waitMs: string | undefined,
    @Res({ passthrough: true }) reply: FastifyReply,
  ): Promise<IngressTable | undefined> {
    const wait = waitMs === undefined ? 20_000 : Number(waitMs);
    if (!Number.isInteger(wait) || wait < 0 || wait > MAX_INGRESS_WAIT_MS)
      throw new InvalidError(`waitMs must be a whole number from 0 to ${MAX_INGRESS_WAIT_MS}`, { field: "waitMs", value: waitMs });
    if (version !== undefined && version.length > 200)
      throw new InvalidError("version is longer than 200 characters", { field: "version" });
    const table = await this.ingress.waitFor(version || undefined, wait);
    if (!table) reply.status(204);
    return table;
  }

  @Post("heartbeat")
  @HttpCode(200)
  @ApiOperation({
    summary: "Agent heartbeat (at the period the last reply gave): registers the node on first contact and reports its containers",
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
        networksVersion: {
          type: "string",
          description:
            'version of the overlay network table the agent applied last ("" for none): the reply has `networks` only when given and changed',
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
              health: {
                enum: ["starting", "healthy", "unhealthy"],
                description: "the health check's status of a running container that has one: its task runs only once healthy",
              },
              healthOutput: { type: "string", description: "the last failed health check's output" },
              startedAt: { type: "string" },
              finishedAt: { type: "string" },
            },
          },
        },
      },
    },
  })
  @ApiOkResponse({
    description:
      "The node's id, the heartbeat period, the control plane's replica URLs, and the routing mesh's table when the agent's is out of date",
    schema: {
      type: "object",
      required: ["nodeId", "heartbeatMs"],
      properties: {
        nodeId: { type: "string", format: "uuid" },
        heartbeatMs: {
          type: "integer",
          description:
            "the period to beat at from now on: FLOTILLA_HEARTBEAT_MS, stretched as the cluster grows (FLOTILLA_MAX_HEARTBEATS_PER_S, at most 60 s)",
        },
        networks: { type: "object", description: "the node's overlay network table (as GET /api/v1/nodes/networks answers)" },
        maxBackoffMs: { type: "integer", description: "the longest the agent may wait between retries while beats fail" },
        apiUrls: {
          type: "array",
          items: { type: "string", format: "uri" },
          description:
            "every control-plane replica's URL as agents reach it (FLOTILLA_AGENT_API_URL), when configured: the agent keeps this list and fails over along it",
        },
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
