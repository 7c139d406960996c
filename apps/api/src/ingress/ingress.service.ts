// The routing mesh's table, as agents receive it in heartbeat replies: every ingress port of
// every service, with the running tasks' node addresses and dynamic host ports (libs/core
// ingressTable decides; this reads the rows). Every node gets the same table, so it is built
// once per CACHE_MS per process however many nodes beat, and sent only to agents whose version
// differs.
import { createHash } from "node:crypto";
import { Inject, Injectable } from "@nestjs/common";
import { CLOCK } from "../common/clock";
import type { Clock } from "@flotilla/core";
import { ingressTable, type IngressPort, type MeshBackendTask, type PortConfig, type TaskEndpoint, type TaskState } from "@flotilla/core";
import { PrismaService } from "../database/prisma.service";

/** What an agent's ingress proxy applies (agent/src/ingress/ingress-types.ts mirrors it). */
export interface IngressTable {
  /** Changes whenever the content does. */
  version: string;
  ports: IngressPort[];
}

// A new task reaches the mesh within this plus one heartbeat period.
const CACHE_MS = 500;

/** The host other nodes reach a node's published ports on: its engine URL's, when that is TCP. */
export function nodeAddress(engineUrl: string | null): string | undefined {
  if (!engineUrl || !/^https?:\/\//.test(engineUrl)) return undefined;
  return new URL(engineUrl).hostname.replace(/^\[(.*)\]$/, "$1");
}

@Injectable()
export class IngressService {
  private cached: { at: number; table: Promise<IngressTable> } | undefined;

  constructor(
    private readonly prisma: PrismaService,
    @Inject(CLOCK) private readonly clock: Clock,
  ) {}

  /** The current table; concurrent callers within CACHE_MS share one read. */
  table(): Promise<IngressTable> {
    const now = this.clock.now();
    if (!this.cached || now - this.cached.at >= CACHE_MS) {
      const table = this.read();
      this.cached = { at: now, table };
      // A failed read must not be served to the next callers.
      table.catch(() => {
        if (this.cached?.table === table) this.cached = undefined;
      });
    }
    return this.cached.table;
  }

  /** The table for an agent that has `version`: undefined when it is current. */
  async tableFor(version: string | undefined): Promise<IngressTable | undefined> {
    const table = await this.table();
    return table.version === version ? undefined : table;
  }

  private async read(): Promise<IngressTable> {
    const services = await this.prisma.$queryRaw<{ id: string; name: string; ports: PortConfig[] }[]>`
      SELECT id::text AS id, name, spec->'ports' AS ports FROM "Service"
      WHERE jsonb_path_exists(spec, '$.ports[*] ? (@.mode == "ingress")')`;
    const rows = services.length
      ? await this.prisma.$queryRaw<{ serviceId: string; endpoints: TaskEndpoint[]; engineUrl: string | null }[]>`
          SELECT t."serviceId"::text AS "serviceId", t.endpoints, n."engineUrl"
          FROM "Task" t JOIN "Node" n ON n.id = t."nodeId"
          WHERE t."serviceId" = ANY(${services.map((s) => s.id)}::uuid[])
            AND t.state = ${"RUNNING" satisfies TaskState}::"TaskState" AND t."desiredState" = ${"RUNNING"}::"DesiredTaskState"
            AND n.status = ${"READY"}::"NodeStatus" AND t.endpoints IS NOT NULL`
      : [];
    const tasks: MeshBackendTask[] = [];
    for (const r of rows) {
      const address = nodeAddress(r.engineUrl);
      if (address) tasks.push({ serviceId: r.serviceId, nodeAddress: address, endpoints: r.endpoints });
    }
    const ports = ingressTable(services, tasks);
    return { version: createHash("sha256").update(JSON.stringify(ports)).digest("hex").slice(0, 16), ports };
  }
}
