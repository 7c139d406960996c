// Declares silent nodes DOWN, only from evidence gathered while the control plane was healthy
// (libs/core nodesDown): never within a heartbeat window plus the agents' back-off after the
// control plane became healthy (ControlPlaneHealth), and never while no API process takes
// heartbeats — that silence is ours, and it moves "healthy since" on instead. Runs in every
// worker; the UPDATE re-checks the rule, so with several workers each node goes down once.
import { Inject, Injectable, Logger, OnApplicationBootstrap, OnModuleDestroy } from "@nestjs/common";
import { nodesDown, type Clock, type LivenessInput } from "@flotilla/core";
import { CLOCK } from "../common/clock";
import { PrismaService } from "../database/prisma.service";
import { nodeStatusSql, utc } from "../database/sql";
import { insertEvents } from "../events/event-rows";
import { EventsService } from "../events/events.service";
import { ControlPlaneHealth } from "../health/control-plane-health";
import { QueuesService } from "../queues/queues.service";
import { ServicesRepository } from "../services/services.repository";
import { TasksRepository } from "../tasks/tasks.repository";
import { HEARTBEAT_CONFIG, MISSED_BEATS, type HeartbeatConfig } from "./heartbeat-config";

@Injectable()
export class NodeMonitorService implements OnApplicationBootstrap, OnModuleDestroy {
  private readonly logger = new Logger("node-monitor");
  private timer?: NodeJS.Timeout;
  private running?: Promise<unknown>;

  constructor(
    private readonly prisma: PrismaService,
    private readonly events: EventsService,
    private readonly queues: QueuesService,
    private readonly services: ServicesRepository,
    private readonly tasks: TasksRepository,
    private readonly health: ControlPlaneHealth,
    @Inject(HEARTBEAT_CONFIG) private readonly config: HeartbeatConfig,
    @Inject(CLOCK) private readonly clock: Clock,
  ) {}

  onApplicationBootstrap(): void {
    this.timer = setInterval(() => {
      if (this.running) return;
      this.running = this.check()
        .catch((e: Error) => this.logger.warn(`down check failed: ${e.message}`))
        .finally(() => (this.running = undefined));
    }, this.config.periodMs);
  }

  /** Marks silent nodes down; returns their ids. */
  async check(now = this.clock.now()): Promise<string[]> {
    const state = await this.health.state();
    const input: LivenessInput = {
      now,
      ...state,
      periodMs: this.config.periodMs,
      missedBeats: MISSED_BEATS,
      agentMaxBackoffMs: this.config.agentMaxBackoffMs,
    };
    // Only the API processes' own mark proves that heartbeats are taken promptly, not a heartbeat
    // that got through: an API too busy to probe on time is also late with heartbeats, and judging
    // nodes by its lateness would restart their containers for our fault.
    if (state.intakeAliveAt === undefined || now - state.intakeAliveAt > 2 * this.config.periodMs) {
      // No API process takes heartbeats: agents cannot report, so their window starts again.
      await this.health.markHealthy(now, state.intakeAliveAt ?? now);
      return [];
    }
    const nodes = await this.prisma.sql.query<{ id: string; status: string; lastHeartbeatAt: Date | null }>(
      `SELECT id::text AS id, lower(status::text) AS status, "lastHeartbeatAt" FROM "Node" WHERE status = ${nodeStatusSql("ready")}`,
    );
    const candidates = nodesDown(
      nodes.map((n) => ({ ...n, lastHeartbeatAt: n.lastHeartbeatAt?.getTime() ?? null })),
      input,
    );
    if (candidates.length === 0) return [];
    const down = await this.markDown(candidates, now, now - MISSED_BEATS * this.config.periodMs, state.healthySince);
    if (down.length === 0) return [];
    this.logger.warn(`nodes down (no heartbeat for ${MISSED_BEATS * this.config.periodMs} ms): ${down.map((n) => n.hostname).join(", ")}`);
    for (const id of await this.services.servicesOnNodes(down.map((n) => n.id))) await this.queues.enqueueReconcile(id, "node down");
    return down.map((n) => n.id);
  }

  /**
   * One transaction: the nodes go DOWN only if still silent and no recovery was recorded since
   * the decision (a heartbeat or an outage may have come meanwhile); tasks being stopped there
   * end ORPHANED (TasksRepository); the events.
   */
  private async markDown(ids: string[], now: number, cutoff: number, healthySince: number): Promise<{ id: string; hostname: string }[]> {
    const { down, evs } = await this.prisma.sql.transaction(async (tx) => {
      const down = await tx.query<{ id: string; hostname: string }>(
        `UPDATE "Node" SET status = ${nodeStatusSql("down")}, "updatedAt" = $2::timestamp(3)
         WHERE id = ANY($1::uuid[]) AND status = ${nodeStatusSql("ready")} AND coalesce("lastHeartbeatAt", 'epoch') < $3::timestamp(3)
           AND (SELECT "healthySince" FROM "ControlPlane" WHERE id = 1) = $4::timestamp(3)
         RETURNING id::text AS id, hostname`,
        [ids, utc(now), utc(cutoff), utc(healthySince)],
      );
      if (down.length === 0) return { down, evs: [] };
      await this.tasks.orphanStopping(
        tx,
        down.map((n) => n.id),
        now,
      );
      const evs = await insertEvents(
        tx,
        down.map((n) => ({ kind: "node", subjectId: n.id, action: "down", data: { hostname: n.hostname, missedBeats: MISSED_BEATS } })),
        now,
      );
      return { down, evs };
    });
    await this.events.publish(evs);
    return down;
  }

  async onModuleDestroy(): Promise<void> {
    clearInterval(this.timer);
    await this.running;
  }
}
