// Agent heartbeats: the first registers the node, each marks it ready and reports its
// containers. What a report means is decided by libs/core (foldReport): task moves (forward
// only), "missing" counts kept in Postgres so every API replica folds alike, and strays, which
// are removed by a dispatch job. Heartbeats need only Postgres: while Redis is down they are
// still taken (the sweep catches up on the reconciles they would have asked for), so nodes keep
// their evidence of life through a Redis outage.
import { Inject, Injectable, Logger } from "@nestjs/common";
import {
  engineUrlFor,
  foldReport,
  isTerminal,
  STALE_CLAIM_MS,
  type Clock,
  type ContainerObservation,
  type ReportedContainer,
  type TaskState,
} from "@flotilla/core";
import type { NodeNetworkTable } from "@flotilla/core";
import { TASK_LABELS } from "@flotilla/engine-client";
import { AGENT_PORT } from "@flotilla/provision";
import { CLOCK } from "../common/clock";
import { PrismaService } from "../database/prisma.service";
import { desiredStateSql } from "../database/sql";
import { TASK_COLUMNS } from "../database/task-rows";
import { EventsService, type FlotillaEvent } from "../events/events.service";
import type { Task as TaskRow } from "../generated/prisma/client";
import { ControlPlaneHealth } from "../health/control-plane-health";
import { QueuesService } from "../queues/queues.service";
import { ACTIVE_STATES, toCoreTask } from "../services/mapping";
import { ServicesRepository } from "../services/services.repository";
import { IngressService, type IngressTable } from "../ingress/ingress.service";
import { OverlayTablesService } from "../networks/overlay-tables.service";
import { TasksRepository } from "../tasks/tasks.repository";
import { Batcher } from "../common/batcher";
import { ReplicaUrls } from "../health/replica-urls";
import { HEARTBEAT_CONFIG, MISSED_BEATS, type HeartbeatConfig } from "./heartbeat-config";
import { HeartbeatBody, type Reporter } from "./heartbeat-body";
import { HeartbeatIntake } from "./intake";
import { HeartbeatPace } from "./pace";
import { reconcileLater } from "./reconcile-later";
import { touchReady, type NodeRef, type Touched, type TouchItem } from "./ready-touch";
import { NodeRegistrations } from "./registrations";

/** What an agent learns from a heartbeat. */
export interface HeartbeatReply {
  nodeId: string;
  heartbeatMs: number;
  /**
   * The longest an agent may wait between retries while beats fail: the node monitor waits this
   * out after an outage before it declares anything down, so agents must not wait longer.
   */
  maxBackoffMs: number;
  /** The routing mesh's table, when the agent's is out of date. */
  ingress?: IngressTable;
  /** The node's overlay network table, when the agent sent networksVersion and its table differs. */
  networks?: NodeNetworkTable;
  /**
   * Every control-plane replica's URL as agents reach it (FLOTILLA_AGENT_API_URL), when
   * configured: the agent keeps it (over its env file's) and fails over along it.
   */
  apiUrls?: string[];
}

type Reported = HeartbeatBody["containers"][number];
// A full fold at least every this many beats, even of identical reports.
const FULL_FOLD_BEATS = 6;
// Touch batches in flight at once, and beats per batch at most (see Batcher).
const TOUCH_BATCHES = 2;
const TOUCH_BATCH_MAX = 200;

function observation(c: Reported): ContainerObservation {
  if (c.state === "running") {
    return { kind: "running", ...(c.health ? { health: c.health } : {}), ...(c.healthOutput ? { healthOutput: c.healthOutput } : {}) };
  }
  if (c.state === "created") return { kind: "created" };
  if (c.oomKilled) return { kind: "oom", ...(c.exitCode !== undefined ? { exitCode: c.exitCode } : {}) };
  return { kind: "exited", exitCode: c.exitCode ?? 0 };
}

@Injectable()
export class HeartbeatsService {
  private readonly logger = new Logger("heartbeats");
  /**
   * Per host name, the last report this process folded: an identical one is skipped (work saved,
   * nothing decided: a full fold still comes every FULL_FOLD_BEATS beats, and the missing counts
   * that decide a vanished container are in Postgres).
   */
  private readonly lastReport = new Map<string, { digest: string; at: number; again: boolean }>();
  private readonly touches = new Batcher<TouchItem, Touched | null>(
    (items) => touchReady(this.prisma.sql, items, this.clock.now(), (evs) => this.events.publish(evs)),
    {
      maxInFlight: TOUCH_BATCHES,
      maxBatch: TOUCH_BATCH_MAX,
      key: (i) => i.hb.hostname,
    },
  );

  constructor(
    private readonly prisma: PrismaService,
    private readonly events: EventsService,
    private readonly queues: QueuesService,
    private readonly services: ServicesRepository,
    private readonly tasks: TasksRepository,
    private readonly ingress: IngressService,
    private readonly overlay: OverlayTablesService,
    private readonly health: ControlPlaneHealth,
    private readonly intake: HeartbeatIntake,
    private readonly pace: HeartbeatPace,
    private readonly registrations: NodeRegistrations,
    @Inject(HEARTBEAT_CONFIG) private readonly config: HeartbeatConfig,
    @Inject(CLOCK) private readonly clock: Clock,
    private readonly replicas: ReplicaUrls,
  ) {}

  async beat(hb: HeartbeatBody, reporter: Reporter = { admin: true }): Promise<HeartbeatReply> {
    const receivedAt = this.clock.now();
    // How long the beat waits until its node is marked alive is what says whether this process
    // keeps up (HeartbeatIntake); the fold after that may take longer without harm.
    const ticket = this.intake.arrived(receivedAt);
    let touched: Touched & { stale: boolean; digest: string };
    let periodMs: number;
    try {
      periodMs = await this.pace.periodMs();
      touched = await this.touchOnce(hb, reporter, periodMs, receivedAt);
      this.intake.done(ticket, true);
    } catch (e) {
      this.intake.done(ticket, false);
      throw e;
    }
    const { node, active } = touched;
    const stale = !active || touched.stale;
    // Back or new (no tasks read by the touch): whatever it reports is looked at in full, as
    // strays of replaced tasks may be among it.
    if (stale) {
      const again = await this.fold(node, hb.containers, active ?? (await this.activeTasks(node.id)), receivedAt);
      this.lastReport.set(hb.hostname, { digest: touched.digest, at: receivedAt, again });
    }
    const ingress = await this.ingress.tableFor(hb.ingressVersion);
    // Only agents that take part in overlays say which table they have; the others cost nothing.
    const networks = hb.networksVersion !== undefined ? await this.overlay.tableFor(node.id, hb.networksVersion || undefined) : undefined;
    return {
      nodeId: node.id,
      heartbeatMs: periodMs,
      maxBackoffMs: this.config.agentMaxBackoffMs,
      ...(ingress ? { ingress } : {}),
      ...(networks ? { networks } : {}),
      // The configured replicas and those installed on manager machines (read every few seconds).
      ...(this.replicas.current().agentApiUrls.length ? { apiUrls: [...this.replicas.current().agentApiUrls] } : {}),
    };
  }

  /** Marks the node alive (registering it if new); says whether its report is to be folded. */
  private async touchOnce(
    hb: HeartbeatBody,
    reporter: Reporter,
    periodMs: number,
    receivedAt: number,
  ): Promise<Touched & { stale: boolean; digest: string }> {
    const digest = hb.containers
      .map((c) => `${c.id}:${c.state}:${c.exitCode ?? ""}:${c.health ?? ""}`)
      .sort()
      .join(",");
    const last = this.lastReport.get(hb.hostname);
    // A full fold at least every FULL_FOLD_BEATS beats of the configured period.
    const stale = !(
      last?.digest === digest &&
      !last.again &&
      receivedAt - last.at < FULL_FOLD_BEATS * Math.max(periodMs, this.config.periodMs)
    );
    return { ...(await this.touch({ hb, withTasks: stale, reporter, periodMs })), stale, digest };
  }

  /**
   * The engine URL to record when the beat registers its node (libs/core engineUrlFor): null
   * keeps the one on record. Ready nodes' beats read the same from their touch statement.
   */
  private async registrationEngineUrl(item: TouchItem): Promise<string | null> {
    const [machine] = await this.prisma.sql.query<{ ip: string | null }>(`SELECT ip FROM "Machine" WHERE name = $1`, [item.hb.hostname]);
    return engineUrlFor({
      ...(machine ? { machine } : {}),
      reported: item.hb.engineUrl,
      reporterIsAdmin: item.reporter.admin,
      current: null,
      agentPort: AGENT_PORT,
    });
  }

  /**
   * Marks the node alive; registers it on first contact. The steady state — a ready node
   * beating again — is a share of one batched statement (touchReady), which also reads the
   * node's active tasks when asked to.
   */
  private async touch(item: TouchItem): Promise<Touched> {
    const { hb } = item;
    const touched = await this.touches.call(item);
    if (touched && (!hb.nodeId || touched.node.id === hb.nodeId)) return touched;
    // New, back from DOWN, or a node id that no longer matches (replaced): registered in a batch.
    const node = await this.registrations.register({
      hostname: hb.hostname,
      labels: hb.labels,
      engineUrl: await this.registrationEngineUrl(item),
      nanoCpus: hb.resources.nanoCpus,
      memoryBytes: hb.resources.memoryBytes,
      periodMs: item.periodMs,
    });
    return { node };
  }

  private activeTasks(nodeId: string): Promise<TaskRow[]> {
    return this.prisma.sql.query<TaskRow>(
      `SELECT ${TASK_COLUMNS} FROM "Task" t WHERE t."nodeId" = $1::uuid AND t.state = ANY($2::"TaskState"[])`,
      [nodeId, [...ACTIVE_STATES]],
    );
  }

  /**
   * Folds a report into the node's tasks (libs/core foldReport), writes the result, and asks
   * for the strays' removal. Returns whether the next report must be folded even if identical.
   */
  private async fold(node: NodeRef, containers: Reported[], active: TaskRow[], receivedAt: number): Promise<boolean> {
    const reported: ReportedContainer[] = containers.map((c) => ({
      id: c.id,
      ...(c.labels[TASK_LABELS.taskId] ? { taskId: c.labels[TASK_LABELS.taskId] } : {}),
      observation: observation(c),
    }));
    const now = this.clock.now();
    const r = foldReport({
      tasks: active.map((t) => ({ task: toCoreTask(t), containerId: t.containerId, missingReports: t.missingReports })),
      reported,
      wanted: await this.wanted(reported, active),
      now,
      receivedAt,
      current: this.health.isCurrent(receivedAt),
      settleMs: MISSED_BEATS * this.config.periodMs,
      staleClaimMs: STALE_CLAIM_MS,
    });
    const rows = new Map(active.map((t) => [t.id, t]));
    for (const c of r.changes)
      if (c.next.state === "FAILED" && !c.containerId)
        this.logger.warn(`task ${c.taskId}: container missing from ${node.hostname}'s last reports`);
    const evs = await this.tasks.applyFold(
      r.changes.map((c) => ({ ...c, serviceId: rows.get(c.taskId)!.serviceId, slot: rows.get(c.taskId)!.slot })),
      r.missing,
      now,
    );
    await this.published(evs);
    if (r.strays.length)
      await this.queues
        .enqueueRemove({ nodeId: node.id, containers: [...r.strays], graceMs: 10_000 })
        .catch((e: Error) => this.logger.warn(`strays on ${node.hostname} left for later: ${e.message}`));
    return r.deferred || r.missing.size > 0;
  }

  /** Of the reported containers' tasks not on this node's list, those still wanted running. */
  private async wanted(reported: readonly ReportedContainer[], active: readonly TaskRow[]): Promise<Set<string>> {
    const onNode = new Set(active.map((t) => t.id));
    const others = [...new Set(reported.flatMap((c) => (c.taskId && !onNode.has(c.taskId) ? [c.taskId] : [])))].filter((id) =>
      UUID.test(id),
    );
    if (others.length === 0) return new Set();
    const rows = await this.prisma.sql.query<{ id: string }>(
      `SELECT id::text AS id FROM "Task" WHERE id = ANY($1::uuid[]) AND "desiredState" = ${desiredStateSql("running")} AND state = ANY($2::"TaskState"[])`,
      [others, [...ACTIVE_STATES]],
    );
    return new Set(rows.map((r) => r.id));
  }

  /**
   * Publishes the fold's events; a task that ended restarts (policy permitting) and frees room;
   * a task that became healthy (RUNNING here, after STARTING) is what a rolling update waits for.
   */
  private async published(evs: FlotillaEvent[]): Promise<void> {
    await this.events.publish(evs);
    const ended = new Set(evs.filter((e) => isTerminal(e.data.state as TaskState)).map((e) => e.data.serviceId as string));
    if (ended.size) {
      const waiting = await this.services.servicesWaitingForCapacity();
      await reconcileLater(this.queues, this.logger, [...ended, ...waiting], "task ended");
    }
    const healthy = new Set(evs.filter((e) => e.data.state === "RUNNING").map((e) => e.data.serviceId as string));
    for (const id of ended) healthy.delete(id);
    if (healthy.size) await reconcileLater(this.queues, this.logger, healthy, "task running");
  }
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
