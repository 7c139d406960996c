import { Controller, Delete, Get, HttpCode, Param, Post, Query } from "@nestjs/common";
import { ApiBearerAuth, ApiOperation, ApiParam, ApiQuery, ApiTags } from "@nestjs/swagger";
import type { ControlPlaneReplicaView, OperationAccepted } from "@flotilla/api-types";
import { ApiUnavailable } from "../common/api-unavailable";
import { ControlPlaneReplicasService } from "./control-plane-replicas.service";

const REF = { name: "id", description: "node id or hostname" };

/** Control-plane API replicas on manager machines: `ctl node promote --control-plane`, `ctl node demote`. */
@ApiTags("nodes")
@ApiBearerAuth()
@Controller("api/v1")
export class ControlPlaneReplicasController {
  constructor(private readonly replicas: ControlPlaneReplicasService) {}

  @Get("control-plane/replicas")
  @ApiOperation({
    summary: "The control-plane API replicas installed on manager machines, with their state (installing, running, removing, failed)",
  })
  list(): Promise<ControlPlaneReplicaView[]> {
    return this.replicas.list();
  }

  @Post("nodes/:id/control-plane")
  @HttpCode(202)
  @ApiParam(REF)
  @ApiOperation({
    summary:
      "Install a control-plane API replica on a manager node's machine (admin only): the control-plane bundle, the secrets key, the CA certificate (not its key) and the control plane's client certificate go there over the machine's SSH, and an `api` process starts on FLOTILLA_REPLICA_PORT (8080) joining the same Postgres and Redis (as the machine reaches them: FLOTILLA_REPLICA_DATABASE_URL, FLOTILLA_REPLICA_REDIS_URL). Once it answers it joins GET /api/v1/control-plane's lists. 409 for a worker node, a node no machine of ours runs, a machine not ready or one with a replica; 400 when Postgres or Redis is configured on loopback with no replica URL; 503 when the bundle is not built",
  })
  @ApiUnavailable()
  add(@Param("id") id: string): Promise<OperationAccepted> {
    return this.replicas.add(id);
  }

  @Delete("nodes/:id/control-plane")
  @HttpCode(202)
  @ApiParam(REF)
  @ApiOperation({
    summary: "Stop and remove the node's control-plane replica (its bundle, settings, secrets key and certificates; admin only)",
  })
  @ApiQuery({
    name: "force",
    required: false,
    description: "1/true: forget the replica even when its machine cannot be reached to remove it",
  })
  @ApiUnavailable()
  remove(@Param("id") id: string, @Query("force") force?: string): Promise<OperationAccepted> {
    return this.replicas.remove(id, force === "1" || force === "true");
  }
}
