import { Controller, Get, Inject } from "@nestjs/common";
import { ApiBearerAuth, ApiOkResponse, ApiOperation, ApiTags } from "@nestjs/swagger";
import type { ControlPlaneView } from "@flotilla/api-types";
import { APP_CONFIG, type AppConfig } from "../config/config";
import { MACHINES_CONFIG, type MachinesConfig } from "../machines/machines-config";

/**
 * The control plane's replicas as clients reach them. The console reads it after sign-in and
 * sends a request no replica answered to the next one; agents get their list in heartbeat replies.
 */
@ApiTags("health")
@ApiBearerAuth()
@Controller("api/v1/control-plane")
export class ControlPlaneController {
  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    @Inject(MACHINES_CONFIG) private readonly machines: MachinesConfig,
  ) {}

  @Get()
  @ApiOperation({
    summary: "The control plane's replica URLs, as users (FLOTILLA_PUBLIC_URLS) and agents (FLOTILLA_AGENT_API_URL) reach them",
  })
  @ApiOkResponse({
    description: "Both lists, in order; empty when not configured",
    schema: {
      type: "object",
      required: ["apiUrls", "agentApiUrls"],
      properties: {
        apiUrls: { type: "array", items: { type: "string", format: "uri" }, example: ["http://10.0.0.11:8080", "http://10.0.0.12:8080"] },
        agentApiUrls: { type: "array", items: { type: "string", format: "uri" } },
      },
    },
  })
  view(): ControlPlaneView {
    return { apiUrls: [...this.config.publicUrls], agentApiUrls: [...this.machines.agentApiUrls] };
  }
}
