import { DynamicModule, Global, Module, type Provider } from "@nestjs/common";
import { APP_FILTER, APP_GUARD } from "@nestjs/core";
import { BearerAuthGuard } from "./auth/auth.guard";
import { DomainExceptionFilter } from "./common/domain-exception.filter";
import { APP_CONFIG, type AppConfig } from "./config/config";
import { PrismaService } from "./database/prisma.service";
import { RedisConnections } from "./database/redis";
import { EventsController } from "./events/events.controller";
import { EventsService } from "./events/events.service";
import { HealthController } from "./health/health.controller";
import { JobHandlers } from "./queues/job-handlers";
import { QueuesService } from "./queues/queues.service";
import { WorkersService } from "./queues/workers.service";
import { TokensController } from "./tokens/tokens.controller";
import { TokensService } from "./tokens/tokens.service";

/** Shared infrastructure every role needs: config, Postgres, Redis, events, queues. */
@Global()
@Module({})
export class CoreModule {
  static forConfig(config: AppConfig): DynamicModule {
    const providers: Provider[] = [
      { provide: APP_CONFIG, useValue: config },
      PrismaService,
      RedisConnections,
      EventsService,
      QueuesService,
      JobHandlers,
      TokensService,
    ];
    return { module: CoreModule, providers, exports: providers };
  }
}

/** The HTTP API: controllers, auth, error mapping. */
@Module({
  controllers: [HealthController, EventsController, TokensController],
  providers: [
    { provide: APP_GUARD, useClass: BearerAuthGuard },
    { provide: APP_FILTER, useClass: DomainExceptionFilter },
  ],
})
export class HttpModule {}

/** Queue consumers. */
@Module({ providers: [WorkersService] })
export class WorkerModule {}

/** Same image, three roles: `api`, `worker`, or both (`all`), so each scales out on its own. */
export function appModule(config: AppConfig): DynamicModule {
  const imports: DynamicModule["imports"] = [CoreModule.forConfig(config)];
  if (config.role !== "worker") imports.push(HttpModule);
  if (config.role !== "api") imports.push(WorkerModule);
  return { module: AppRootModule, imports };
}

@Module({})
export class AppRootModule {}
