// The statements of dispatch jobs, batched across jobs. A node's dispatch is its own job, and
// many run at once (one per node a reconcile gave work): their reads, claims and outcome records
// go to Postgres together instead of a few statements per job. What a job decides stays its own.
import { Inject, Injectable } from "@nestjs/common";
import { STALE_CLAIM_MS, type Clock } from "@flotilla/core";
import { Batcher } from "../common/batcher";
import { CLOCK } from "../common/clock";
import { PrismaService } from "../database/prisma.service";
import { nodeStatusSql } from "../database/sql";
import { nodeTasksLateral, TASK_COLUMNS } from "../database/task-rows";
import { EventsService } from "../events/events.service";
import type { Task as TaskRow } from "../generated/prisma/client";
import { ACTIVE_STATES } from "../services/mapping";
import { TasksRepository, type LaunchOutcome } from "../tasks/tasks.repository";
import type { AgentRef, ServiceRef } from "./agent-calls";

/** A ready node's agent and its active tasks. */
export interface NodeWork {
  node: AgentRef;
  tasks: TaskRow[];
}

// Batches of each kind in flight at once, and calls per batch at most.
const IN_FLIGHT = 4;
const MAX_BATCH = 256;

@Injectable()
export class DispatchBatches {
  private readonly reads = new Batcher<string, NodeWork | null>((ids) => this.readNodes(ids), {
    maxInFlight: IN_FLIGHT,
    maxBatch: MAX_BATCH,
  });
  private readonly claims = new Batcher<readonly string[], Set<string>>((calls) => this.claimAll(calls), {
    maxInFlight: IN_FLIGHT,
    maxBatch: MAX_BATCH,
  });
  private readonly records = new Batcher<readonly LaunchOutcome[], void>((calls) => this.recordAll(calls), {
    maxInFlight: IN_FLIGHT,
    maxBatch: MAX_BATCH,
  });
  private readonly services = new Batcher<readonly string[], Map<string, ServiceRef>>((calls) => this.loadServices(calls), {
    maxInFlight: IN_FLIGHT,
    maxBatch: MAX_BATCH,
  });

  constructor(
    private readonly prisma: PrismaService,
    private readonly tasks: TasksRepository,
    private readonly events: EventsService,
    @Inject(CLOCK) private readonly clock: Clock,
  ) {}

  /** The node (null unless it is ready) and its active tasks. */
  node(nodeId: string): Promise<NodeWork | null> {
    return this.reads.call(nodeId);
  }

  /** Claims tasks for this dispatcher (see TasksRepository.claim); the ids won. */
  claim(ids: readonly string[]): Promise<Set<string>> {
    return ids.length ? this.claims.call(ids) : Promise.resolve(new Set());
  }

  /** Records launch outcomes and publishes their events. */
  record(outcomes: readonly LaunchOutcome[]): Promise<void> {
    return outcomes.length ? this.records.call(outcomes) : Promise.resolve();
  }

  /** These services (those that still exist), read once for the jobs asking at the same time. */
  serviceRefs(ids: readonly string[]): Promise<Map<string, ServiceRef>> {
    return ids.length ? this.services.call(ids) : Promise.resolve(new Map());
  }

  private async readNodes(ids: string[]): Promise<(NodeWork | null)[]> {
    // A LEFT JOIN, so a ready node without tasks is one row with a null task.
    const rows = await this.prisma.sql.query<TaskRow & { nodeRef: string; nodeHostname: string; nodeEngineUrl: string | null }>(
      `SELECT n.id::text AS "nodeRef", n.hostname AS "nodeHostname", n."engineUrl" AS "nodeEngineUrl", ${TASK_COLUMNS}
       FROM "Node" n LEFT JOIN LATERAL (${nodeTasksLateral("$2")}) t ON true
       WHERE n.id = ANY($1::uuid[]) AND n.status = ${nodeStatusSql("ready")}`,
      [ids, [...ACTIVE_STATES]],
    );
    const work = new Map<string, NodeWork>();
    for (const { nodeRef, nodeHostname, nodeEngineUrl, ...task } of rows) {
      let w = work.get(nodeRef);
      if (!w) work.set(nodeRef, (w = { node: { hostname: nodeHostname, engineUrl: nodeEngineUrl }, tasks: [] }));
      if (task.id !== null) w.tasks.push(task);
    }
    return ids.map((id) => work.get(id) ?? null);
  }

  private async claimAll(calls: (readonly string[])[]): Promise<Set<string>[]> {
    const now = this.clock.now();
    const won = await this.tasks.claim(calls.flat(), now, now - STALE_CLAIM_MS);
    return calls.map((ids) => new Set(ids.filter((id) => won.has(id))));
  }

  private async recordAll(calls: (readonly LaunchOutcome[])[]): Promise<void[]> {
    await this.events.publish(await this.tasks.recordLaunches(calls.flat(), this.clock.now()));
    return calls.map(() => undefined);
  }

  private async loadServices(calls: (readonly string[])[]): Promise<Map<string, ServiceRef>[]> {
    const rows = await this.prisma.sql.query<ServiceRef>(
      `SELECT id::text AS id, name, spec, "updateState" FROM "Service" WHERE id = ANY($1::uuid[])`,
      [[...new Set(calls.flat())]],
    );
    const all = new Map(rows.map((s) => [s.id, s]));
    return calls.map((ids) => new Map(ids.flatMap((id) => (all.has(id) ? [[id, all.get(id)!] as const] : []))));
  }
}
