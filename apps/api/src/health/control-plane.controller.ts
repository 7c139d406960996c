import { Controller, Get, Inject } from "@nestjs/common";
import { ApiBearerAuth, ApiOkResponse, ApiOperation, ApiTags } from "@nestjs/swagger";
import type { ControlPlaneView } from "@flotilla/api-types";
import { ReplicaUrls } from "./replica-urls";

/**
 * The control plane's replicas as clients reach them. The console reads it after sign-in and
 * sends a request no replica answered to the next one; agents get their list in heartbeat replies.
 */
@ApiTags("health")
@ApiBearerAuth()
@Controller("api/v1/control-plane")
export class ControlPlaneController {
  constructor(@Inject(ReplicaUrls) private readonly replicas: ReplicaUrls) {}

  @Get()
  @ApiOperation({
    summary:
      "The control plane's replica URLs, as users (FLOTILLA_PUBLIC_URLS) and agents (FLOTILLA_AGENT_API_URL) reach them, followed by the running replicas installed on manager machines (ctl node promote --control-plane)",
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
  async view(): Promise<ControlPlaneView> {
    // Fresh when Postgres answers; the last lists read otherwise (what clients fail over along).
    const { apiUrls, agentApiUrls } = await this.replicas.refresh().catch(() => this.replicas.current());
    return { apiUrls: [...apiUrls], agentApiUrls: [...agentApiUrls] };
  }
}
