// A node's first heartbeat (or its first after it went down or was replaced): the node row is
// created or made READY, with a `register` or `ready` event. A fleet booting registers thousands
// at once, so registrations are batched like beats (Batcher): one statement and one transaction
// per batch, and the follow-ups that new capacity calls for — reconciles of services waiting for
// room, the automatic rebalance — once per batch rather than once per node. One at a time,
// 5,000 agents took minutes to join.
import { Inject, Injectable, Logger } from "@nestjs/common";
import type { Clock } from "@flotilla/core";
import { CLOCK } from "../common/clock";
import { PrismaService } from "../database/prisma.service";
import { nodeStatusSql, utc } from "../database/sql";
import { insertEvents } from "../events/event-rows";
import { EventsService } from "../events/events.service";
import { QueuesService } from "../queues/queues.service";
import { ServicesRepository } from "../services/services.repository";
import { Batcher } from "../common/batcher";
import { reconcileLater } from "./reconcile-later";

/** One node to register or make ready. */
export interface Registration {
  hostname: string;
  /** Recorded only when the node is new: afterwards the operator owns its labels. */
  labels: Record<string, string>;
  /** The engine URL to record; null keeps the one on record. */
  engineUrl: string | null;
  nanoCpus: number;
  memoryBytes: number;
  /** The heartbeat period its reply tells it. */
  periodMs: number;
}

// Registration batches at once (one: two batches never wait on each other's node rows), and
// registrations per batch at most.
const BATCHES = 1;
const BATCH_MAX = 500;

@Injectable()
export class NodeRegistrations {
  private readonly logger = new Logger("heartbeats");
  private readonly batches = new Batcher<Registration, { id: string; hostname: string }>((items) => this.registerBatch(items), {
    maxInFlight: BATCHES,
    maxBatch: BATCH_MAX,
    key: (r) => r.hostname,
  });

  constructor(
    private readonly prisma: PrismaService,
    private readonly events: EventsService,
    private readonly queues: QueuesService,
    private readonly services: ServicesRepository,
    @Inject(CLOCK) private readonly clock: Clock,
  ) {}

  /** Registers the node (or makes it READY again); resolves once its batch is recorded. */
  register(r: Registration): Promise<{ id: string; hostname: string }> {
    return this.batches.call(r);
  }

  private async registerBatch(items: Registration[]): Promise<{ id: string; hostname: string }[]> {
    const now = this.clock.now();
    const { rows, evs } = await this.prisma.sql.transaction(async (tx) => {
      // `old` and the upsert see the same snapshot: `was` is each node's status before.
      const rows = await tx.query<{ id: string; hostname: string; engineUrl: string | null; was: string | null }>(
        `WITH v AS (
           SELECT * FROM unnest($1::text[], $2::jsonb[], $3::text[], $4::bigint[], $5::bigint[], $6::int[])
             AS v(hostname, labels, url, cpu, mem, period)),
         old AS (SELECT n.hostname, lower(n.status::text) AS status FROM "Node" n JOIN v ON n.hostname = v.hostname),
         up AS (
           INSERT INTO "Node" AS node (id, hostname, labels, status, "engineUrl", "cpuNanos", "memoryBytes", "lastHeartbeatAt", "heartbeatMs", "updatedAt")
           SELECT gen_random_uuid(), v.hostname, v.labels, ${nodeStatusSql("ready")}, v.url, v.cpu, v.mem, $7::timestamp(3), v.period, $7::timestamp(3)
           FROM v ORDER BY v.hostname
           ON CONFLICT (hostname) DO UPDATE SET status = ${nodeStatusSql("ready")},
             "engineUrl" = coalesce(EXCLUDED."engineUrl", node."engineUrl"), "cpuNanos" = EXCLUDED."cpuNanos",
             "memoryBytes" = EXCLUDED."memoryBytes", "lastHeartbeatAt" = EXCLUDED."lastHeartbeatAt",
             "heartbeatMs" = EXCLUDED."heartbeatMs", "updatedAt" = EXCLUDED."updatedAt"
           RETURNING node.id, node.hostname, node."engineUrl")
         SELECT up.id::text AS id, up.hostname, up."engineUrl", old.status AS was FROM up LEFT JOIN old USING (hostname)`,
        [
          items.map((r) => r.hostname),
          items.map((r) => JSON.stringify(r.labels)),
          items.map((r) => r.engineUrl),
          items.map((r) => r.nanoCpus),
          items.map((r) => r.memoryBytes),
          items.map((r) => r.periodMs),
          utc(now),
        ],
      );
      const evs = await insertEvents(
        tx,
        rows.map((n) =>
          n.was === null
            ? { kind: "node", subjectId: n.id, action: "register", data: { hostname: n.hostname, engineUrl: n.engineUrl } }
            : { kind: "node", subjectId: n.id, action: "ready", data: { hostname: n.hostname, was: n.was } },
        ),
        now,
      );
      return { rows, evs };
    });
    await this.events.publish(evs);
    // New capacity: pending tasks may fit now, global services want a task on the new nodes, and
    // services that asked for it spread onto them.
    const reason = rows.length === 1 ? `node ${rows[0]!.hostname} ready` : `${rows.length} nodes ready`;
    await reconcileLater(this.queues, this.logger, this.services.servicesWaitingForCapacity(), reason);
    try {
      // One check of the auto-rebalanced services, run by a worker (the rebalance queue).
      await this.queues.enqueueAutoRebalance(reason);
    } catch (e) {
      this.logger.warn(`automatic rebalance (${reason}) skipped: ${(e as Error).message}`);
    }
    const byHost = new Map(rows.map((n) => [n.hostname, { id: n.id, hostname: n.hostname }]));
    return items.map((r) => byHost.get(r.hostname)!);
  }
}
