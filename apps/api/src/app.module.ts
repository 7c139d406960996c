import { DynamicModule, Global, Module, type Provider } from "@nestjs/common";
import { APP_FILTER, APP_GUARD } from "@nestjs/core";
import { BearerAuthGuard } from "./auth/auth.guard";
import { DomainExceptionFilter } from "./common/domain-exception.filter";
import { APP_CONFIG, type AppConfig } from "./config/config";
import { PrismaService } from "./database/prisma.service";
import { RedisConnections } from "./database/redis";
import { EventsController } from "./events/events.controller";
import { EventsService } from "./events/events.service";
import { ListingViews } from "./common/listing-views";
import { ControlPlaneController } from "./health/control-plane.controller";
import { HealthController } from "./health/health.controller";
import { JobHandlers } from "./queues/job-handlers";
import { QueuesService } from "./queues/queues.service";
import { WorkersService } from "./queues/workers.service";
import { TokensController } from "./tokens/tokens.controller";
import { TokensService } from "./tokens/tokens.service";
import { systemClock } from "@flotilla/core";
import { CLOCK } from "./common/clock";
import { DispatchService } from "./dispatch/dispatch.service";
import { DispatchBatches } from "./dispatch/dispatch-batches";
import { TaskValuesService } from "./dispatch/task-values";
import { TaskLogs } from "./dispatch/task-logs";
import { ControlPlaneHealth } from "./health/control-plane-health";
import { TasksRepository } from "./tasks/tasks.repository";
import { EngineClients } from "./dispatch/engine-clients";
import { HEARTBEAT_CONFIG, heartbeatConfig } from "./heartbeats/heartbeat-config";
import { HeartbeatsController } from "./heartbeats/heartbeats.controller";
import { HeartbeatsService } from "./heartbeats/heartbeats.service";
import { NodeMonitorService } from "./heartbeats/node-monitor.service";
import { HeartbeatIntake } from "./heartbeats/intake";
import { HeartbeatPace } from "./heartbeats/pace";
import { NodeRegistrations } from "./heartbeats/registrations";
import { IngressService } from "./ingress/ingress.service";
import { NetworksController } from "./networks/networks.controller";
import { NetworksRepository } from "./networks/networks.repository";
import { NetworksService } from "./networks/networks.service";
import { OverlayTablesService } from "./networks/overlay-tables.service";
import { NodesController } from "./nodes/nodes.controller";
import { NodesRepository } from "./nodes/nodes.repository";
import { NodesService } from "./nodes/nodes.service";
import { LogsService } from "./services/logs.service";
import { ReconcileRepository } from "./services/reconcile.repository";
import { ReconcileService } from "./services/reconcile.service";
import { AutoRebalanceService } from "./services/auto-rebalance.service";
import { ServicesController } from "./services/services.controller";
import { ServicesRepository } from "./services/services.repository";
import { ServicesService } from "./services/services.service";
import { StacksController } from "./stacks/stacks.controller";
import { StacksService } from "./stacks/stacks.service";
import { TasksController } from "./tasks/tasks.controller";
import { TasksService } from "./tasks/tasks.service";
import { MachineHost } from "./machines/machine-host";
import { ControlPlaneReplicasController } from "./machines/control-plane-replicas.controller";
import { ControlPlaneReplicasService } from "./machines/control-plane-replicas.service";
import { ReplicaUrls } from "./health/replica-urls";
import { MachineJobsService } from "./machines/machine-jobs.service";
import { MACHINES_CONFIG, loadMachinesConfig, type MachinesConfig } from "./machines/machines-config";
import { MachinesController } from "./machines/machines.controller";
import { MachinesRepository } from "./machines/machines.repository";
import { MachinesService } from "./machines/machines.service";
import { ConsoleModule } from "./console/console.module";
import { JoinController } from "./join/join.controller";
import { JoinService } from "./join/join.service";
import { ConfigsController, SecretsController } from "./secrets/secrets.controller";
import { SecretsService } from "./secrets/secrets.service";

/** Shared infrastructure every role needs: config, Postgres, Redis, events, queues. */
@Global()
@Module({})
export class CoreModule {
  static forConfig(config: AppConfig): DynamicModule {
    const providers: Provider[] = [
      { provide: APP_CONFIG, useValue: config },
      { provide: CLOCK, useValue: systemClock },
      PrismaService,
      RedisConnections,
      EventsService,
      ListingViews,
      QueuesService,
      JobHandlers,
      TokensService,
      // Services, nodes, tasks, dispatch: shared by the HTTP API and the workers.
      {
        provide: HEARTBEAT_CONFIG,
        useFactory: (machines: MachinesConfig) => heartbeatConfig(config, machines),
        inject: [MACHINES_CONFIG],
      },
      EngineClients,
      TasksRepository,
      HeartbeatIntake,
      HeartbeatPace,
      NodeRegistrations,
      ControlPlaneHealth,
      ServicesRepository,
      ServicesService,
      NodesRepository,
      NodesService,
      TasksService,
      LogsService,
      HeartbeatsService,
      IngressService,
      NetworksRepository,
      NetworksService,
      OverlayTablesService,
      ReconcileRepository,
      // Machines: drivers, provisioning, certificates (FLOTILLA_DATA_DIR is checked here, at start-up).
      { provide: MACHINES_CONFIG, useFactory: () => loadMachinesConfig(config.configDir) },
      MachineHost,
      MachinesRepository,
      MachinesService,
      JoinService,
      SecretsService,
      ControlPlaneReplicasService,
      ReplicaUrls,
    ];
    return { module: CoreModule, providers, exports: providers };
  }
}

/** The HTTP API: controllers, auth, error mapping; the web console at `/`. */
@Module({
  imports: [ConsoleModule],
  controllers: [
    HealthController,
    ControlPlaneController,
    EventsController,
    TokensController,
    ServicesController,
    StacksController,
    TasksController,
    HeartbeatsController,
    NodesController,
    MachinesController,
    JoinController,
    SecretsController,
    NetworksController,
    ConfigsController,
    ControlPlaneReplicasController,
  ],
  providers: [StacksService, { provide: APP_GUARD, useClass: BearerAuthGuard }, { provide: APP_FILTER, useClass: DomainExceptionFilter }],
})
export class HttpModule {}

/** Queue consumers. */
@Module({
  providers: [
    WorkersService,
    ReconcileService,
    AutoRebalanceService,
    DispatchService,
    DispatchBatches,
    TaskValuesService,
    TaskLogs,
    NodeMonitorService,
    MachineJobsService,
  ],
})
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
