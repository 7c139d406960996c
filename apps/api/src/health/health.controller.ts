import { Controller, Get, Inject, Res } from "@nestjs/common";
import { ApiOkResponse, ApiOperation, ApiServiceUnavailableResponse, ApiTags } from "@nestjs/swagger";
import type { FastifyReply } from "fastify";
import { Public } from "../auth/auth.guard";
import { APP_CONFIG, type AppConfig } from "../config/config";
import { PrismaService } from "../database/prisma.service";
import { RedisConnections } from "../database/redis";
import { VERSION } from "../version";

@ApiTags("health")
@Controller("api/v1/health")
export class HealthController {
  constructor(
    private readonly prisma: PrismaService,
    private readonly redis: RedisConnections,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {}

  @Get()
  @Public()
  @ApiOperation({ summary: "Liveness of the API and its dependencies (no token needed)" })
  @ApiOkResponse({ description: "Postgres and Redis answer" })
  @ApiServiceUnavailableResponse({ description: "Postgres or Redis does not answer; the body says which" })
  async health(@Res({ passthrough: true }) reply: FastifyReply) {
    const [postgres, redis] = await Promise.all([this.prisma.ping(), this.redis.ping()]);
    const ok = postgres.ok && redis.ok;
    void reply.status(ok ? 200 : 503);
    return { status: ok ? "ok" : "degraded", version: VERSION, role: this.config.role, postgres, redis };
  }
}
