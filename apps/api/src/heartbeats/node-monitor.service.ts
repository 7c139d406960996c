// Marks nodes that missed MISSED_BEATS heartbeats DOWN. Runs in every worker; the UPDATE ...
// RETURNING is atomic, so with several workers each node still goes down exactly once.
import { Inject, Injectable, Logger, OnApplicationBootstrap, OnModuleDestroy } from "@nestjs/common";
import { PrismaService } from "../database/prisma.service";
import { EventsService } from "../events/events.service";
import { QueuesService } from "../queues/queues.service";
import { ACTIVE_STATES, TX_OPTIONS } from "../services/mapping";
import { ServicesRepository } from "../services/services.repository";
import { HEARTBEAT_CONFIG, MISSED_BEATS, type HeartbeatConfig } from "./heartbeat-config";

@Injectable()
export class NodeMonitorService implements OnApplicationBootstrap, OnModuleDestroy {
  private readonly logger = new Logger("node-monitor");
  private timer?: NodeJS.Timeout;
  private startedAt = 0;
  private running?: Promise<unknown>;

  constructor(
    private readonly prisma: PrismaService,
    private readonly events: EventsService,
    private readonly queues: QueuesService,
    private readonly services: ServicesRepository,
    @Inject(HEARTBEAT_CONFIG) private readonly config: HeartbeatConfig,
  ) {}

  onApplicationBootstrap(): void {
    this.startedAt = Date.now();
    this.timer = setInterval(() => {
      if (this.running) return;
      this.running = this.check()
        .catch((e: Error) => this.logger.warn(`down check failed: ${e.message}`))
        .finally(() => (this.running = undefined));
    }, this.config.periodMs);
  }

  /** Marks silent nodes down; returns their ids. */
  async check(now = Date.now()): Promise<string[]> {
    const window = MISSED_BEATS * this.config.periodMs;
    // After a control-plane restart every heartbeat looks old: give agents a full window to
    // reach us again before declaring anything down (their tasks would be replaced).
    if (now - this.startedAt < window) return [];
    const cutoff = new Date(now - window);
    const down = await this.prisma.$queryRaw<{ id: string; hostname: string }[]>`
      UPDATE "Node" SET status = 'DOWN'::"NodeStatus", "updatedAt" = now()
      WHERE status = 'READY'::"NodeStatus" AND "lastHeartbeatAt" < ${cutoff}
      RETURNING id::text AS id, hostname`;
    if (down.length === 0) return [];
    const ids = down.map((n) => n.id);
    const evs = await this.prisma.$transaction(async (tx) => {
      // Tasks already being stopped will never be reported stopped by a dead agent; live ones
      // are orphaned by the orchestrator, which also replaces them.
      await tx.task.updateMany({
        where: { nodeId: { in: ids }, desiredState: "SHUTDOWN", state: { in: [...ACTIVE_STATES] } },
        data: { state: "ORPHANED", finishedAt: new Date(now) },
      });
      return this.events.record(tx, down.map((n) => ({ kind: "node", subjectId: n.id, action: "down", data: { hostname: n.hostname, missedBeats: MISSED_BEATS } })));
    }, TX_OPTIONS);
    await this.events.publish(evs);
    this.logger.warn(`nodes down (no heartbeat for ${window} ms): ${down.map((n) => n.hostname).join(", ")}`);
    for (const id of await this.services.servicesOnNodes(ids)) await this.queues.enqueueReconcile(id, "node down");
    return ids;
  }

  async onModuleDestroy(): Promise<void> {
    clearInterval(this.timer);
    await this.running;
  }
}
