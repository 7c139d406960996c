// Each node's overlay network table (libs/core nodeNetworkTable decides; this reads the rows),
// as the agents receive it: by long poll (GET /api/v1/nodes/networks?version=…) and in heartbeat
// replies, as the ingress table travels. Unlike the ingress table, every node's differs, so the
// rows are read once for all the nodes asking (kept until a change that matters, or CACHE_MS /
// LIVE_CACHE_MS) and each node's table is computed from them in memory. A node those rows lack,
// or whose own row changed since, reads that row alone. An at-once request (no version, no wait:
// an agent whose create names a network it has not heard of) reads the rows after it arrived.
//
// A change is noticed from the event stream (task, service, node and network events, published
// on Redis to every API process): waiting polls re-read at once, for the events that may change
// a table (core's overlayEventScope: a task's only if its service is attached to a network; a
// node's, while there is no network, only to its own table).
// Without Redis they re-read every RECHECK_MS.
import { Inject, Injectable, OnModuleDestroy } from "@nestjs/common";
import {
  ADDRESSED_TASK_STATES,
  overlayEventScope,
  type Clock,
  type DesiredState,
  type EndpointMode,
  type NodeNetworkTable,
  type NodeStatus,
  type OverlayNetworkInfo,
  type OverlayNodeInfo,
  type OverlayServiceInfo,
  type OverlayTaskInfo,
  type TaskState,
} from "@flotilla/core";
import { CLOCK } from "../common/clock";
import { SharedReads } from "../common/shared-reads";
import { TableServiceWatch } from "../common/table-services";
import { VersionedTable } from "../common/versioned-table";
import { PrismaService } from "../database/prisma.service";
import { EventsService } from "../events/events.service";
import { nodeAddress } from "../ingress/ingress.service";
import { TablesBySnapshot } from "./snapshot-tables";

const RECHECK_MS = 1000;
// Changes after the first within this long reach waiting polls together, at its end (a node
// event each while thousands register).
const COALESCE_MS = 250;
// A poll unchanged for its whole wait is answered up to this share early: see earlyShare.
const EARLY_SHARE = 0.25;
// Heartbeat replies and polls share one read per CACHE_MS, or per LIVE_CACHE_MS while the event
// stream delivers (every change that matters drops it then); only an at-once request (no wait,
// no version: an agent asking for a network a create names) reads after it arrived.
const CACHE_MS = 500;
const LIVE_CACHE_MS = 5_000;
/** A Service row's condition for being attached to an overlay network. */
const ATTACHED_SERVICE = `jsonb_array_length(coalesce(spec->'networks', '[]'::jsonb)) > 0`;
const TABLE_EVENTS: ReadonlySet<string> = new Set(["task", "service", "node", "network"]);
/** Longest wait an agent may ask for. */
export const MAX_NETWORKS_WAIT_MS = 60_000;

interface Rows {
  networks: OverlayNetworkInfo[];
  services: OverlayServiceInfo[];
  tasks: OverlayTaskInfo[];
  nodes: OverlayNodeInfo[];
}

@Injectable()
export class OverlayTablesService implements OnModuleDestroy {
  private readonly reads = new SharedReads<Rows>();
  /** The rows every node's table is made of; each node's table is computed from them. */
  private readonly rows: VersionedTable<Rows>;
  /** Each node's table, computed once per rows snapshot (shared by every beat and poll reading it). */
  private readonly tables = new TablesBySnapshot();
  /** The services attached to networks: only their tasks' events change the tables. */
  private readonly watched = new TableServiceWatch(overlayEventScope, async () => {
    const [row] = await this.prisma.sql.query<{ services: string[]; networks: boolean }>(
      `SELECT coalesce((SELECT array_agg(id::text) FROM "Service" WHERE ${ATTACHED_SERVICE}), '{}') AS services,
         EXISTS (SELECT 1 FROM "OverlayNetwork") AS networks`,
    );
    return row!;
  });

  constructor(
    private readonly prisma: PrismaService,
    events: EventsService,
    @Inject(CLOCK) clock: Clock,
  ) {
    this.rows = new VersionedTable({
      now: () => clock.now(),
      cacheMs: CACHE_MS,
      liveCacheMs: LIVE_CACHE_MS,
      recheckMs: RECHECK_MS,
      maxWaitMs: MAX_NETWORKS_WAIT_MS,
      events: () => events.stream(),
      streamLive: () => events.streamLive(),
      kinds: TABLE_EVENTS,
      scope: this.watched.scope,
      coalesceMs: COALESCE_MS,
      earlyShare: EARLY_SHARE,
    });
    this.watched.bind((scope) => this.rows.changedIn(scope));
  }

  onModuleDestroy(): void {
    this.rows.close();
  }

  /** The node's table, read now. */
  async tableOf(nodeId: string): Promise<NodeNetworkTable> {
    return this.tables.of(await this.reads.read("", () => this.read())).table(nodeId);
  }

  /**
   * The node's table for a heartbeat reply to an agent that has `version`: undefined when it is
   * current. Read at most every CACHE_MS (sooner after a change), however many nodes beat.
   */
  async tableFor(nodeId: string, version: string | undefined): Promise<NodeNetworkTable | undefined> {
    this.rows.watch();
    const table = await this.sharedTableOf(nodeId);
    return table.version === version ? undefined : table;
  }

  /**
   * The node's table once its version differs from `version`, or undefined when it has not
   * changed within `waitMs` (or the process is shutting down).
   */
  waitFor(nodeId: string, version: string | undefined, waitMs: number): Promise<NodeNetworkTable | undefined> {
    // Answered from the rows heartbeats share, a first poll too: 5,000 agents starting their
    // polls at once had kept a read of every node's row going back to back while they registered.
    return this.rows.waitFor(() => this.sharedTableOf(nodeId), version, waitMs, nodeId);
  }

  /** The node's table from the rows heartbeats share. */
  private async sharedTableOf(nodeId: string): Promise<NodeNetworkTable> {
    const shared = this.rows.cachedWithChanges(() => this.reads.read("", () => this.read()));
    const tables = this.tables.of(await shared.value);
    if (tables.has(nodeId) && !shared.changed.has(nodeId)) return tables.table(nodeId);
    // The node registered or changed since those rows were read (its event came; from another
    // replica it may not have yet). Only its own row can differ: a change to anyone else's table
    // drops the shared rows (overlayEventScope). So that row alone is read again.
    const own = await this.ownRow(nodeId);
    return own ? tables.tableWith(nodeId, own) : this.tableOf(nodeId);
  }

  private async ownRow(nodeId: string): Promise<OverlayNodeInfo | undefined> {
    const [row] = await this.prisma.sql.query<{ id: string; status: string; engineUrl: string | null }>(
      `SELECT id::text AS id, status::text AS status, "engineUrl" FROM "Node" WHERE id = $1::uuid`,
      [nodeId],
    );
    return row && nodeInfo(row);
  }

  /** Every row any node's table is made of (networks, attached services, addressed tasks, nodes). */
  private async read(): Promise<Rows> {
    const watching = this.watched.reading();
    const rows = await this.readRows();
    watching({ services: rows.services.map((s) => s.id), networks: rows.networks.length > 0 });
    return rows;
  }

  private async readRows(): Promise<Rows> {
    // The nodes are read even without a network: every node's table names its own address (in
    // one CI run, a cluster without networks sent each agent nodeAddress "", which it refused).
    const nodes = await this.prisma.sql.query<{ id: string; status: string; engineUrl: string | null }>(
      `SELECT id::text AS id, status::text AS status, "engineUrl" FROM "Node"`,
    );
    const networks = await this.prisma.sql.query<OverlayNetworkInfo>(
      `SELECT id::text AS id, name, vni, subnet, gateway FROM "OverlayNetwork"`,
    );
    if (networks.length === 0) return { networks, services: [], tasks: [], nodes: nodes.map(nodeInfo) };
    const services = await this.prisma.sql.query<{
      id: string;
      name: string;
      networks: { target: string; aliases: string[] }[];
      endpointMode: EndpointMode | null;
      vips: { networkId: string; ip: string }[];
    }>(
      `SELECT s.id::text AS id, s.name, s.spec->'networks' AS networks, s.spec->>'endpointMode' AS "endpointMode",
         coalesce((SELECT json_agg(json_build_object('networkId', a."networkId"::text, 'ip', a.ip)) FROM "OverlayAddress" a WHERE a."serviceId" = s.id), '[]') AS vips
       FROM "Service" s WHERE ${ATTACHED_SERVICE}`,
    );
    const tasks = await this.prisma.sql.query<{
      id: string;
      serviceId: string;
      nodeId: string | null;
      state: TaskState;
      desiredState: string;
      addresses: { networkId: string; ip: string }[];
    }>(
      `SELECT t.id::text AS id, t."serviceId"::text AS "serviceId", t."nodeId"::text AS "nodeId", t.state::text AS state,
         t."desiredState"::text AS "desiredState",
         json_agg(json_build_object('networkId', a."networkId"::text, 'ip', a.ip)) AS addresses
       FROM "OverlayAddress" a JOIN "Task" t ON t.id = a."taskId"
       WHERE t.state::text = ANY($1::text[])
       GROUP BY t.id`,
      [[...ADDRESSED_TASK_STATES]],
    );
    return {
      networks,
      services: services.map((s) => ({
        id: s.id,
        name: s.name,
        endpointMode: s.endpointMode ?? "vip",
        networks: s.networks.map((n) => ({ networkId: n.target, aliases: n.aliases })),
        vips: s.vips,
      })),
      tasks: tasks.map((t) => ({
        id: t.id,
        serviceId: t.serviceId,
        ...(t.nodeId ? { nodeId: t.nodeId } : {}),
        state: t.state,
        desiredState: t.desiredState.toLowerCase() as DesiredState,
        addresses: t.addresses,
      })),
      nodes: nodes.map(nodeInfo),
    };
  }
}

function nodeInfo(n: { id: string; status: string; engineUrl: string | null }): OverlayNodeInfo {
  const address = nodeAddress(n.engineUrl);
  return {
    id: n.id,
    status: n.status.toLowerCase() as NodeStatus,
    ...(address !== undefined ? { address } : {}),
    ...(n.engineUrl ? { engineUrl: n.engineUrl } : {}),
  };
}
