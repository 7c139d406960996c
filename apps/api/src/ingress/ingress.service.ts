// The routing mesh's table, as agents receive it: every ingress port of every service, with the
// running tasks' node addresses and dynamic host ports (libs/core ingressTable decides; this
// reads the rows). Every node gets the same table, so it is built once per CACHE_MS per process
// however many nodes ask, and sent only to agents whose version differs.
//
// Two ways out: heartbeat replies (every beat, as a fallback), and the agents' long poll
// (GET /api/v1/nodes/ingress?version=…), answered as soon as the table differs. A change is
// noticed from the event stream (every task, service and node change is an event published on
// Redis to every API process): the cache is dropped and waiting polls re-read at once, for the
// events that may change it (core's ingressEventScope: a task's only if its service has ingress
// ports, a node's only if some service has). Without Redis the polls still re-read every RECHECK_MS.
import { Inject, Injectable, OnModuleDestroy } from "@nestjs/common";
import { CLOCK } from "../common/clock";
import { TableServiceWatch } from "../common/table-services";
import { contentVersion, VersionedTable } from "../common/versioned-table";
import type { Clock } from "@flotilla/core";
import {
  ingressEventScope,
  ingressTable,
  type IngressPort,
  type MeshBackendTask,
  type PortConfig,
  type TaskEndpoint,
  type TaskState,
} from "@flotilla/core";
import { PrismaService } from "../database/prisma.service";
import { EventsService } from "../events/events.service";

/** What an agent's ingress proxy applies (agent/src/ingress/ingress-types.ts mirrors it). */
export interface IngressTable {
  /** Changes whenever the content does. */
  version: string;
  ports: IngressPort[];
}

// Without an event (Redis down), a waiting poll sees a change within this plus CACHE_MS. While
// the event stream delivers, every change that matters drops the cache: a read serves longer.
const CACHE_MS = 500;
const LIVE_CACHE_MS = 5_000;
const RECHECK_MS = 1000;
// Changes after the first within this long reach waiting polls together, at its end.
const COALESCE_MS = 250;
// A poll unchanged for its whole wait is answered up to this share early: see earlyShare.
const EARLY_SHARE = 0.25;
/** Event kinds that can change the table: tasks (state, endpoints), services (ports), nodes (status). */
const TABLE_EVENTS: ReadonlySet<string> = new Set(["task", "service", "node"]);
/** Longest wait an agent may ask for. */
export const MAX_INGRESS_WAIT_MS = 60_000;

/** The host other nodes reach a node's published ports on: its engine URL's, when that is TCP. */
export function nodeAddress(engineUrl: string | null): string | undefined {
  if (!engineUrl || !/^https?:\/\//.test(engineUrl)) return undefined;
  // Parsed once per URL: every read of the tables asks it of every node (URL parsing was 2.5 s
  // of the API's CPU while 5,000 agents registered with their polls), and nodes keep their URL.
  let address = parsedAddresses.get(engineUrl);
  if (address === undefined) {
    if (parsedAddresses.size >= PARSED_ADDRESSES_MAX) parsedAddresses.clear();
    address = new URL(engineUrl).hostname.replace(/^\[(.*)\]$/, "$1");
    parsedAddresses.set(engineUrl, address);
  }
  return address;
}
const parsedAddresses = new Map<string, string>();
const PARSED_ADDRESSES_MAX = 100_000;

@Injectable()
export class IngressService implements OnModuleDestroy {
  private readonly latest: VersionedTable<IngressTable>;
  /** The services with ingress ports: only their tasks' events change the table. */
  private readonly watched = new TableServiceWatch(ingressEventScope, async () => ({
    services: (await this.ingressServices()).map((s) => s.id),
  }));

  constructor(
    private readonly prisma: PrismaService,
    events: EventsService,
    @Inject(CLOCK) clock: Clock,
  ) {
    this.latest = new VersionedTable({
      now: () => clock.now(),
      cacheMs: CACHE_MS,
      liveCacheMs: LIVE_CACHE_MS,
      recheckMs: RECHECK_MS,
      maxWaitMs: MAX_INGRESS_WAIT_MS,
      events: () => events.stream(),
      streamLive: () => events.streamLive(),
      kinds: TABLE_EVENTS,
      scope: this.watched.scope,
      coalesceMs: COALESCE_MS,
      earlyShare: EARLY_SHARE,
    });
    this.watched.bind((scope) => this.latest.changedIn(scope));
  }

  /** Answers every waiting poll (with "unchanged"), so shutdown does not wait for them. */
  onModuleDestroy(): void {
    this.latest.close();
  }

  /**
   * The table once its version differs from `version`, or undefined when it has not changed
   * within `waitMs` (or the process is shutting down).
   */
  waitFor(version: string | undefined, waitMs: number): Promise<IngressTable | undefined> {
    return this.latest.waitFor(() => this.table(), version, waitMs);
  }

  /** The current table; concurrent callers within CACHE_MS share one read. */
  table(): Promise<IngressTable> {
    return this.latest.cached(() => this.read());
  }

  /** The table for an agent that has `version`: undefined when it is current. */
  async tableFor(version: string | undefined): Promise<IngressTable | undefined> {
    const table = await this.table();
    return table.version === version ? undefined : table;
  }

  private async read(): Promise<IngressTable> {
    const watching = this.watched.reading();
    const services = await this.ingressServices();
    watching({ services: services.map((s) => s.id) });
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
    return { version: contentVersion(ports), ports };
  }

  /** The services with ingress ports. */
  private ingressServices(): Promise<{ id: string; name: string; ports: PortConfig[] }[]> {
    return this.prisma.$queryRaw<{ id: string; name: string; ports: PortConfig[] }[]>`
      SELECT id::text AS id, name, spec->'ports' AS ports FROM "Service"
      WHERE jsonb_path_exists(spec, '$.ports[*] ? (@.mode == "ingress")')`;
  }
}
