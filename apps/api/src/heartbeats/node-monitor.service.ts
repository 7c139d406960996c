// Declares silent nodes DOWN, only from evidence gathered while the control plane was healthy
// (libs/core nodesDown): never within a heartbeat window plus the agents' back-off after the
// control plane became healthy (ControlPlaneHealth), and never while no API process takes
// heartbeats promptly (none, or one fallen behind: HeartbeatIntake) — that silence is ours, and
// it moves "healthy since" on instead. Each node is judged by the period it was told. Runs in every
// worker; the UPDATE re-checks the rule, so with several workers each node goes down once.
import { Inject, Injectable, Logger, OnApplicationBootstrap, OnModuleDestroy } from "@nestjs/common";
import { intakeProven, nodesDown, type Clock, type LivenessInput } from "@flotilla/core";
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
import { HeartbeatPace } from "./pace";

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
    private readonly pace: HeartbeatPace,
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
      periodMs: await this.pace.periodMs(),
      missedBeats: MISSED_BEATS,
      agentMaxBackoffMs: this.config.agentMaxBackoffMs,
    };
    // Only the API processes' own mark proves that heartbeats are taken promptly, not a heartbeat
    // that got through: an API too busy to take beats promptly (or to probe on time) stops
    // marking, and judging nodes by its lateness would restart their containers for our fault.
    if (!intakeProven(input)) {
      // No API process takes heartbeats promptly: agents cannot report, so their window starts again.
      await this.health.markHealthy(now, state.intakeAliveAt ?? now);
      return [];
    }
    const nodes = await this.prisma.sql.query<{ id: string; status: string; lastHeartbeatAt: Date | null; heartbeatMs: number | null }>(
      `SELECT id::text AS id, lower(status::text) AS status, "lastHeartbeatAt", "heartbeatMs" FROM "Node" WHERE status = ${nodeStatusSql("ready")}`,
    );
    const candidates = nodesDown(
      nodes.map((n) => ({ ...n, lastHeartbeatAt: n.lastHeartbeatAt?.getTime() ?? null, periodMs: n.heartbeatMs })),
      input,
    );
    if (candidates.length === 0) return [];
    const down = await this.markDown(candidates, now, state.healthySince);
    if (down.length === 0) return [];
    this.logger.warn(`nodes down (missed ${MISSED_BEATS} heartbeats): ${down.map((n) => n.hostname).join(", ")}`);
    for (const id of await this.services.servicesOnNodes(down.map((n) => n.id))) await this.queues.enqueueReconcile(id, "node down");
    return down.map((n) => n.id);
  }

  /**
   * One transaction: the nodes go DOWN only if still silent and no recovery was recorded since
   * the decision (a heartbeat or an outage may have come meanwhile); tasks being stopped there
   * end ORPHANED (TasksRepository); the events.
   */
  private async markDown(
    candidates: { id: string; cutoff: number }[],
    now: number,
    healthySince: number,
  ): Promise<{ id: string; hostname: string }[]> {
    const { down, evs } = await this.prisma.sql.transaction(async (tx) => {
      const down = await tx.query<{ id: string; hostname: string }>(
        `UPDATE "Node" AS n SET status = ${nodeStatusSql("down")}, "updatedAt" = $2::timestamp(3)
         FROM unnest($1::uuid[], $3::timestamp(3)[]) AS c(id, cutoff)
         WHERE n.id = c.id AND n.status = ${nodeStatusSql("ready")} AND coalesce(n."lastHeartbeatAt", 'epoch') < c.cutoff
           AND (SELECT "healthySince" FROM "ControlPlane" WHERE id = 1) = $4::timestamp(3)
         RETURNING n.id::text AS id, n.hostname`,
        [candidates.map((c) => c.id), utc(now), candidates.map((c) => utc(c.cutoff)), utc(healthySince)],
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
