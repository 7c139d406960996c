// Dispatch: makes one node's agent do what the task rows say, as its own deduplicated job per
// node (QUEUE.dispatch; jobs running at once share their statements, DispatchBatches, and a
// node's containers are launched a batch per request): ASSIGNED tasks are claimed and started,
// tasks the orchestrator stopped are stopped (grace period, then kill) and removed; a "remove"
// job removes containers no task wants (a removed service's, strays). Reconcile only asks for these jobs and never waits on
// them, so an agent that does not answer holds up its own node's job and nothing else: each call
// has the engine client's timeout, and after one failure to reach the agent the rest of that
// job's calls fail at once instead of each waiting out its own timeout. A launch the agent did
// not answer stays claimed, never rejected: its container may exist (agent-calls.ts).
import { Inject, Injectable, Logger, OnModuleInit } from "@nestjs/common";
import {
  DISPATCHED_TASK_STATES,
  dispatchWork,
  isUpdateActive,
  STALE_CLAIM_MS,
  type Clock,
  type ServiceSpec,
  type UpdateState,
} from "@flotilla/core";
import type { Job } from "bullmq";
import { CLOCK } from "../common/clock";
import { PrismaService } from "../database/prisma.service";
import { NODE_COLUMNS, nodeRow } from "../database/node-rows";
import { EventsService } from "../events/events.service";
import type { Task as TaskRow } from "../generated/prisma/client";
import { JobHandlers } from "../queues/job-handlers";
import { QUEUE, type DispatchJob, type DispatchPart, type RemoveContainersJob } from "../queues/queue-names";
import { QueuesService } from "../queues/queues.service";
import { toCoreTask } from "../services/mapping";
import { ServicesRepository } from "../services/services.repository";
import { TasksRepository } from "../tasks/tasks.repository";
import { AgentCalls, inParallel, refSpec, type AgentRef, type ServiceRef } from "./agent-calls";
import { DispatchBatches } from "./dispatch-batches";
import { EngineClients } from "./engine-clients";
import { TaskValuesService } from "./task-values";
import { TaskLogs } from "./task-logs";
import { NetworksRepository } from "../networks/networks.repository";
import type { BodyAttachment } from "./container-body";

export { STALE_CLAIM_MS };
export type { AgentRef };
export { containerBody, ingressEndpoints } from "./container-body";
// Calls to one agent in flight at once; nodes in flight at once is the queue's concurrency.
const PER_AGENT = 8;

@Injectable()
export class DispatchService implements OnModuleInit {
  private readonly logger = new Logger("dispatch");

  constructor(
    private readonly prisma: PrismaService,
    private readonly events: EventsService,
    private readonly queues: QueuesService,
    private readonly engines: EngineClients,
    private readonly services: ServicesRepository,
    private readonly tasks: TasksRepository,
    private readonly handlers: JobHandlers,
    private readonly values: TaskValuesService,
    private readonly taskLogs: TaskLogs,
    private readonly networks: NetworksRepository,
    private readonly batches: DispatchBatches,
    @Inject(CLOCK) private readonly clock: Clock,
  ) {}

  onModuleInit(): void {
    this.handlers.register(QUEUE.dispatch, (job: Job) =>
      job.name === "remove"
        ? this.removeContainers(job.data as RemoveContainersJob)
        : this.runNode((job.data as DispatchJob).nodeId, (job.data as DispatchJob).part),
    );
  }

  /** One node's dispatch: start what is assigned there, stop what is no longer wanted (or only one `part` of that). */
  async runNode(nodeId: string, part?: DispatchPart): Promise<{ started: number; stopped: number; rejected: number }> {
    const read = await this.batches.node(nodeId);
    if (!read) return { started: 0, stopped: 0, rejected: 0 };
    const { node, tasks: rows } = read;
    const byId = new Map(rows.map((t) => [t.id, t]));
    const all = dispatchWork(
      rows.map((t) => ({ task: toCoreTask(t), containerId: t.containerId })),
      this.clock.now(),
    );
    const work = { start: part === "stop" ? [] : all.start, stop: part === "start" ? [] : all.stop };
    const agent = new AgentCalls(node, this.engines);
    const services = await this.batches.serviceRefs([...new Set([...work.start, ...work.stop].map((w) => w.task.serviceId))]);
    const launched = await this.startAll(
      agent,
      work.start.map((w) => byId.get(w.task.id)!),
      services,
    );
    const stopped = await this.stopAll(
      agent,
      work.stop.map((w) => byId.get(w.task.id)!),
      services,
    );
    await this.followUps(launched, stopped, services);
    return {
      started: [...launched.values()].reduce((n, l) => n + l.started, 0),
      stopped: stopped.size,
      rejected: [...launched.values()].reduce((n, l) => n + l.rejected, 0),
    };
  }

  /**
   * Claims the tasks (only one dispatcher wins each), launches them on the agent, and records
   * the outcomes a batch at a time as they come. Returns per service how many started/failed.
   */
  private async startAll(
    agent: AgentCalls,
    tasks: TaskRow[],
    services: ReadonlyMap<string, ServiceRef>,
  ): Promise<Map<string, { started: number; rejected: number }>> {
    const counts = new Map<string, { started: number; rejected: number }>();
    if (tasks.length === 0) return counts;
    const mine = await this.batches.claim(tasks.map((t) => t.id));
    const values = this.values.loader();
    await agent.launchAll(
      tasks.filter((t) => mine.has(t.id) && services.has(t.serviceId)).map((task) => ({ task, service: services.get(task.serviceId)! })),
      values,
      (task, spec) => this.attach(task, spec),
      async (outcomes) => {
        for (const outcome of outcomes) {
          const c = counts.get(outcome.task.serviceId) ?? { started: 0, rejected: 0 };
          if (outcome.containerId) c.started++;
          else c.rejected++;
          counts.set(outcome.task.serviceId, c);
        }
        await this.batches.record(outcomes);
      },
    );
    return counts;
  }

  /**
   * The task's addresses on its service's overlay networks, given out now if it has none yet (a
   * launch taken over from a stale claim keeps those it had). A new address is an event, so the
   * nodes' waiting network tables are answered before the container asks for its network.
   */
  private async attach(task: TaskRow, spec: ServiceSpec): Promise<readonly BodyAttachment[]> {
    if (spec.networks.length === 0) return [];
    const { attachments, added } = await this.networks.attachTask(task, spec);
    if (added)
      await this.events
        .emit({
          kind: "network",
          subjectId: task.id,
          action: "attach",
          data: { task: task.id, addresses: attachments.map((a) => `${a.network}=${a.ip}`) },
        })
        .catch((e: Error) => this.logger.warn(`task ${task.id}: network event: ${e.message}`));
    return attachments;
  }

  /** Stops (grace, then kill) and removes the containers of tasks no longer wanted; records SHUTDOWN. */
  private async stopAll(agent: AgentCalls, tasks: TaskRow[], services: ReadonlyMap<string, ServiceRef>): Promise<Set<string>> {
    const stopped = new Set<string>();
    await inParallel(tasks, PER_AGENT, async (task) => {
      const grace = services.get(task.serviceId) ? refSpec(services.get(task.serviceId)!).stopGracePeriodMs : 10_000;
      const r = await agent.stop(task, grace);
      if (r === "unreachable") return;
      // ACCEPTED without a container is a create in flight: its start is stopped on the next pass.
      const from = task.containerId ? DISPATCHED_TASK_STATES : (["ASSIGNED"] as const);
      const evs = await this.tasks.finish(task, [...from], "SHUTDOWN", this.clock.now(), r.exitCode);
      await this.events.publish(evs);
      if (r.log) await this.taskLogs.keep(task.id, r.log);
      if (evs.length) stopped.add(task.serviceId);
    });
    return stopped;
  }

  /**
   * Started tasks are what a rolling update waits for before its next batch; rejected ones are
   * replaced; a stopped task frees memory and ports that pending tasks may be waiting for.
   */
  private async followUps(
    launched: Map<string, { started: number; rejected: number }>,
    stopped: Set<string>,
    services: ReadonlyMap<string, ServiceRef>,
  ): Promise<void> {
    const again = new Set<string>(stopped);
    for (const [id, c] of launched) {
      const s = services.get(id);
      const updating = s?.updateState != null && isUpdateActive(s.updateState as unknown as UpdateState);
      if (c.rejected > 0 || (c.started > 0 && updating)) again.add(id);
    }
    if (stopped.size > 0) for (const id of await this.services.servicesWaitingForCapacity()) again.add(id);
    for (const id of again) await this.queues.enqueueReconcile(id, stopped.has(id) ? "tasks stopped" : "tasks started");
  }

  /**
   * Stops and removes containers that no task wants (a removed service's, strays). Throws if
   * some are left, so the job is retried (and, once given up, a stray is found again by the
   * node's next full heartbeat fold).
   */
  async removeContainers(job: RemoveContainersJob): Promise<number> {
    const [node] = (
      await this.prisma.sql.query<Parameters<typeof nodeRow>[0]>(`SELECT ${NODE_COLUMNS} FROM "Node" n WHERE n.id = $1::uuid`, [job.nodeId])
    ).map(nodeRow);
    if (!node) return 0;
    const agent = new AgentCalls(node, this.engines);
    // A finished task's container (a stray once its task is over) keeps its log with the task.
    const tasks = await this.taskLogs.tasksOf(job.containers);
    let removed = 0;
    await inParallel(job.containers, PER_AGENT, async (id) => {
      const taskId = tasks.get(id);
      if (await agent.remove(id, job.graceMs, taskId ? (log) => this.taskLogs.keep(taskId, log) : undefined)) removed++;
    });
    if (removed < job.containers.length)
      throw new Error(`${job.containers.length - removed} of ${job.containers.length} containers on ${node.hostname} not removed`);
    return removed;
  }
}
