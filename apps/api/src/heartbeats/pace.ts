// The heartbeat period agents are told (libs/core heartbeatPeriodMs): the configured one,
// stretched as the cluster grows so that the beats' total rate stays what the control plane is
// sized for. Derived from the node count in Postgres, so every replica tells agents alike; each
// node's row records what it was told (the monitor judges it by that).
import { Inject, Injectable } from "@nestjs/common";
import { heartbeatPeriodMs, type Clock } from "@flotilla/core";
import { CLOCK } from "../common/clock";
import { PrismaService } from "../database/prisma.service";
import { HEARTBEAT_CONFIG, type HeartbeatConfig } from "./heartbeat-config";

// The node count is read again at most this often (a beat never waits for it but the first).
const COUNT_TTL_MS = 1_000;

@Injectable()
export class HeartbeatPace {
  private nodes?: { count: number; at: number };
  private reading?: Promise<number>;

  constructor(
    private readonly prisma: PrismaService,
    @Inject(HEARTBEAT_CONFIG) private readonly config: HeartbeatConfig,
    @Inject(CLOCK) private readonly clock: Clock,
  ) {}

  /** The period to tell agents now. */
  async periodMs(): Promise<number> {
    const now = this.clock.now();
    if (!this.nodes || now - this.nodes.at > COUNT_TTL_MS) {
      const reading = (this.reading ??= this.countNodes().finally(() => (this.reading = undefined)));
      // The last count serves while a fresh one is read; only the very first beat waits.
      if (!this.nodes) await reading;
      else reading.catch(() => undefined);
    }
    return this.periodFor(this.nodes?.count ?? 0);
  }

  /** The period for a cluster of `nodes`. */
  periodFor(nodes: number): number {
    return heartbeatPeriodMs({ basePeriodMs: this.config.periodMs, nodes, maxBeatsPerSecond: this.config.maxBeatsPerSecond });
  }

  private async countNodes(): Promise<number> {
    const at = this.clock.now();
    const [row] = await this.prisma.sql.query<{ n: number }>(`SELECT count(*)::int AS n FROM "Node"`);
    this.nodes = { count: row.n, at };
    return row.n;
  }
}
