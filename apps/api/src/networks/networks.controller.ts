// /api/v1/networks: cluster-wide overlay networks (create with IPAM, list, inspect, remove).
import { Body, Controller, Delete, Get, HttpCode, Param, Post } from "@nestjs/common";
import { ApiBearerAuth, ApiBody, ApiOperation, ApiParam, ApiTags } from "@nestjs/swagger";
import type { NetworkView } from "@flotilla/api-types";
import { z } from "zod";
import { ApiUnavailable } from "../common/api-unavailable";
import { ZodValidationPipe } from "../common/zod-validation.pipe";
import { NetworksService } from "./networks.service";

const CreateNetworkBody = z
  .object({
    name: z.string(),
    driver: z.string().optional(),
    subnet: z.string().optional(),
    gateway: z.string().optional(),
    labels: z.record(z.string().min(1), z.string()).optional(),
    internal: z.boolean().optional(),
    attachable: z.boolean().optional(),
  })
  .strict();
type CreateNetworkBody = z.infer<typeof CreateNetworkBody>;

const REF = { name: "ref", description: "network id or name" };

@ApiTags("networks")
@ApiBearerAuth()
@Controller("api/v1/networks")
export class NetworksController {
  constructor(private readonly networks: NetworksService) {}

  @Post()
  @ApiOperation({
    summary:
      "Create an overlay network: a VXLAN segment joining the nodes that run its tasks. 409 when the subnet overlaps another network's or the name is taken",
  })
  @ApiBody({
    schema: {
      type: "object",
      required: ["name"],
      properties: {
        name: { type: "string", example: "backend" },
        driver: { enum: ["overlay"], description: "overlay (the default and the only driver of cluster networks)" },
        subnet: { type: "string", example: "10.0.9.0/24", description: "IPv4 CIDR, /8 to /29; default: the first free /24 of 10.0.0.0/8" },
        gateway: { type: "string", example: "10.0.9.1", description: "a host address of the subnet (reserved); default: its first" },
        labels: { type: "object", additionalProperties: { type: "string" } },
        internal: { type: "boolean", description: "not supported yet: true is refused" },
        attachable: { type: "boolean", description: "not supported yet: true is refused" },
      },
    },
  })
  @ApiUnavailable()
  create(@Body(new ZodValidationPipe(CreateNetworkBody)) body: CreateNetworkBody): Promise<NetworkView> {
    return this.networks.create(body as Parameters<NetworksService["create"]>[0]);
  }

  @Get()
  @ApiOperation({ summary: "List overlay networks, with the services attached to each and their VIPs" })
  list(): Promise<NetworkView[]> {
    return this.networks.list();
  }

  @Get(":ref")
  @ApiParam(REF)
  @ApiOperation({ summary: "Inspect an overlay network" })
  get(@Param("ref") ref: string): Promise<NetworkView> {
    return this.networks.get(ref);
  }

  @Delete(":ref")
  @HttpCode(204)
  @ApiParam(REF)
  @ApiOperation({ summary: "Remove an overlay network (409 naming the services while any is attached to it)" })
  @ApiUnavailable()
  async remove(@Param("ref") ref: string): Promise<void> {
    await this.networks.remove(ref);
  }
}
