// The control plane's view of its own health, shared through Postgres so every process agrees:
// "healthySince" (ControlPlane row) moves to now whenever a process starts or sees Postgres or
// Redis come back (or Redis come back empty), and API processes record that they take
// heartbeats promptly ("intakeAliveAt": only while none waits longer than a period, HeartbeatIntake). The node monitor declares nodes down only from heartbeats missed
// after that (libs/core node-liveness), and heartbeat folds ignore reports that arrived before
// it. Also what the API answers about an unreachable dependency (503s).
import { Inject, Injectable, Logger, OnApplicationBootstrap, OnModuleDestroy } from "@nestjs/common";
import type { Clock } from "@flotilla/core";
import { randomUUID } from "node:crypto";
import { CLOCK } from "../common/clock";
import { APP_CONFIG, type AppConfig } from "../config/config";
import { PrismaService } from "../database/prisma.service";
import { RedisConnections } from "../database/redis";
import { utc } from "../database/sql";
import { HEARTBEAT_CONFIG, type HeartbeatConfig } from "../heartbeats/heartbeat-config";
import { HeartbeatIntake } from "../heartbeats/intake";
import { HeartbeatPace } from "../heartbeats/pace";

export type Dependency = "postgres" | "redis";

/** What the shared row says. */
export interface ControlPlaneState {
  healthySince: number;
  /** When the outage that ended at healthySince began (healthySince if unknown). */
  outageStartedAt: number;
  intakeAliveAt: number | undefined;
}

@Injectable()
export class ControlPlaneHealth implements OnApplicationBootstrap, OnModuleDestroy {
  private readonly logger = new Logger("health");
  private readonly up: Record<Dependency, boolean> = { postgres: true, redis: true };
  /** Last time this process saw a dependency fail, or started: reports older than it are stale. */
  private lastTroubleAt: number;
  private recovering = true;
  /** When the current streak of failed probes began; undefined while healthy. */
  private troubleStartedAt?: number;
  private booting = true;
  private timer?: NodeJS.Timeout;
  private probing?: Promise<void>;
  private readonly markerValue = randomUUID();
  private readonly marker: string;
  private markerSet = false;
  private readonly recoveredListeners: ((what: string) => Promise<void>)[] = [];

  constructor(
    private readonly prisma: PrismaService,
    private readonly redis: RedisConnections,
    private readonly intake: HeartbeatIntake,
    private readonly pace: HeartbeatPace,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    @Inject(HEARTBEAT_CONFIG) private readonly heartbeat: HeartbeatConfig,
    @Inject(CLOCK) private readonly clock: Clock,
  ) {
    this.lastTroubleAt = clock.now();
    // One key per process: each must notice for itself that Redis lost its data.
    this.marker = `${config.queuePrefix}:present:${this.markerValue}`;
  }

  /** How often dependencies are probed: several times per heartbeat period, at most every second. */
  get probeMs(): number {
    return Math.max(50, Math.min(1_000, Math.floor(this.heartbeat.periodMs / 3)));
  }

  onApplicationBootstrap(): void {
    this.timer = setInterval(() => void this.probeOnce(), this.probeMs);
    void this.probeOnce();
  }

  /** Called (in order) once the control plane is healthy again after an outage, a restart or a Redis that lost its data. */
  onRecovered(fn: (what: string) => Promise<void>): void {
    this.recoveredListeners.push(fn);
  }

  isUp(d: Dependency): boolean {
    return this.up[d];
  }

  /** Whether a report received at `receivedAt` postdates every outage this process knows of. */
  isCurrent(receivedAt: number): boolean {
    return receivedAt > this.lastTroubleAt && !this.recovering;
  }

  /** One probe (also awaited by tests that need a fresh view). */
  probeOnce(): Promise<void> {
    this.probing ??= this.probe().finally(() => (this.probing = undefined));
    return this.probing;
  }

  private async probe(): Promise<void> {
    // Judged first, as of `now`: whether this process took every beat promptly since the last
    // probe. The mark below says so only if it did (and Postgres and Redis answer).
    const keepsUp = this.config.role !== "worker" && this.intake.keepsUp(await this.pace.periodMs().catch(() => this.heartbeat.periodMs));
    const now = this.clock.now();
    const postgres = await this.prisma.sql.query("SELECT 1").then(
      () => true,
      () => false,
    );
    const redis = await this.redisPresent();
    this.note("postgres", postgres);
    this.note("redis", redis !== "down");
    if (!postgres || redis === "down") {
      this.lastTroubleAt = now;
      this.troubleStartedAt ??= now;
      this.recovering = true;
      return;
    }
    try {
      if (redis === "lost") {
        this.logger.warn("Redis came back without its data: re-creating queues and schedules");
        this.recovering = true;
      }
      if (this.recovering) {
        await this.markHealthy(now, await this.outageStart(now));
        this.recovering = false;
        this.booting = false;
        this.troubleStartedAt = undefined;
        for (const fn of this.recoveredListeners) await fn(redis === "lost" ? "redis lost its data" : "recovered");
      }
      await this.redis.client.set(this.marker, "1", "EX", 600);
      this.markerSet = true;
      if (keepsUp) await this.markIntake(now);
    } catch (e) {
      this.logger.warn(`recovery step failed (will retry): ${(e as Error).message}`);
      this.lastTroubleAt = now;
      this.troubleStartedAt ??= now;
      this.recovering = true;
    }
  }

  /**
   * When the outage now ending began: the first failed probe; for an API process starting, the
   * last time any API process proved it took heartbeats (agents have been failing since).
   */
  private async outageStart(now: number): Promise<number> {
    if (this.troubleStartedAt !== undefined) return this.troubleStartedAt;
    if (!this.booting || this.config.role === "worker") return now;
    return Math.min(now, (await this.state()).intakeAliveAt ?? now);
  }

  /** "down", "lost" (answers, but the key every process sets is gone: it restarted empty) or "ok". */
  private async redisPresent(): Promise<"down" | "lost" | "ok"> {
    if (!(await this.redis.ping()).ok) return "down";
    const v = await this.redis.client.get(this.marker).catch(() => undefined);
    if (v === undefined) return "down";
    return v === null && this.markerSet ? "lost" : "ok";
  }

  private note(d: Dependency, ok: boolean): void {
    if (this.up[d] !== ok) this.logger.warn(`${d === "postgres" ? "Postgres" : "Redis"} is ${ok ? "reachable again" : "unreachable"}`);
    this.up[d] = ok;
  }

  /**
   * Records an outage that began at `outageStartedAt` and ended `now`: healthySince moves to now
   * (never back), and every node gets a new window from there. An outage that overlaps the one on
   * record (or is already known) widens it to the earlier start.
   */
  async markHealthy(now: number, outageStartedAt: number): Promise<void> {
    await this.prisma.sql.query(
      `INSERT INTO "ControlPlane" (id, "healthySince", "outageStartedAt") VALUES (1, $1::timestamp(3), $2::timestamp(3))
       ON CONFLICT (id) DO UPDATE SET
         "outageStartedAt" = CASE WHEN EXCLUDED."outageStartedAt" <= "ControlPlane"."healthySince"
           THEN least(coalesce("ControlPlane"."outageStartedAt", "ControlPlane"."healthySince"), EXCLUDED."outageStartedAt")
           ELSE EXCLUDED."outageStartedAt" END,
         "healthySince" = greatest("ControlPlane"."healthySince", EXCLUDED."healthySince")`,
      [utc(now), utc(Math.min(now, outageStartedAt))],
    );
  }

  private async markIntake(now: number): Promise<void> {
    await this.prisma.sql.query(
      `INSERT INTO "ControlPlane" (id, "healthySince", "intakeAliveAt") VALUES (1, $1::timestamp(3), $1::timestamp(3))
       ON CONFLICT (id) DO UPDATE SET "intakeAliveAt" = greatest(coalesce("ControlPlane"."intakeAliveAt", EXCLUDED."intakeAliveAt"), EXCLUDED."intakeAliveAt")`,
      [utc(now)],
    );
  }

  /** The shared row, as every process sees it. */
  async state(): Promise<ControlPlaneState> {
    const [row] = await this.prisma.sql.query<{ healthySince: Date; outageStartedAt: Date | null; intakeAliveAt: Date | null }>(
      `SELECT "healthySince", "outageStartedAt", "intakeAliveAt" FROM "ControlPlane" WHERE id = 1`,
    );
    // No row yet: nobody has been healthy long enough to judge anything.
    if (!row) return { healthySince: this.clock.now(), outageStartedAt: this.clock.now(), intakeAliveAt: undefined };
    const healthySince = row.healthySince.getTime();
    return { healthySince, outageStartedAt: row.outageStartedAt?.getTime() ?? healthySince, intakeAliveAt: row.intakeAliveAt?.getTime() };
  }

  async onModuleDestroy(): Promise<void> {
    clearInterval(this.timer);
    await this.probing;
  }
}
