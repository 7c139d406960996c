// The control plane's replica lists as every process serves them: the configured ones
// (FLOTILLA_PUBLIC_URLS, FLOTILLA_AGENT_API_URL) and the replicas Flotilla installed on manager
// machines (the ControlPlaneReplica rows), merged by core's mergeReplicaUrls. Read from Postgres
// when asked for (GET /api/v1/control-plane) and every few seconds for the hot paths that must
// not wait on a query (heartbeat replies, CORS, the console's CSP).
import { Inject, Injectable, Logger, type OnModuleDestroy, type OnModuleInit } from "@nestjs/common";
import { mergeReplicaUrls, type ReplicaRow } from "@flotilla/core";
import { APP_CONFIG, type AppConfig } from "../config/config";
import { PrismaService } from "../database/prisma.service";
import { MACHINES_CONFIG, type MachinesConfig } from "../machines/machines-config";

const REFRESH_MS = 2_000;

export interface ReplicaLists {
  apiUrls: string[];
  agentApiUrls: string[];
}

@Injectable()
export class ReplicaUrls implements OnModuleInit, OnModuleDestroy {
  private readonly logger = new Logger("replicas");
  private lists: ReplicaLists;
  private timer?: NodeJS.Timeout;

  constructor(
    private readonly prisma: PrismaService,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    @Inject(MACHINES_CONFIG) private readonly machines: MachinesConfig,
  ) {
    this.lists = this.merge([]);
  }

  onModuleInit(): void {
    void this.refresh().catch(() => undefined);
    this.timer = setInterval(() => void this.refresh().catch(() => undefined), REFRESH_MS);
    this.timer.unref();
  }

  onModuleDestroy(): void {
    clearInterval(this.timer);
  }

  /** The lists as last read (at most a few seconds old); the configured ones until the first read. */
  current(): ReplicaLists {
    return this.lists;
  }

  /** Reads the registered replicas now. */
  async refresh(): Promise<ReplicaLists> {
    try {
      const rows: ReplicaRow[] = await this.prisma.controlPlaneReplica.findMany({
        select: { apiUrl: true, agentApiUrl: true, state: true },
        orderBy: { createdAt: "asc" },
      });
      this.lists = this.merge(rows);
    } catch (e) {
      // Postgres away: keep serving the last lists, which is what clients fail over along.
      this.logger.debug(`replica list not refreshed: ${(e as Error).message}`);
      throw e;
    }
    return this.lists;
  }

  /** Origins only: a CORS or CSP source with a path would allow that path alone. */
  origins(): string[] {
    return [...new Set(this.lists.apiUrls.map((u) => new URL(u).origin))];
  }

  private merge(rows: readonly ReplicaRow[]): ReplicaLists {
    return mergeReplicaUrls({ apiUrls: this.config.publicUrls, agentApiUrls: this.machines.agentApiUrls }, rows);
  }
}
