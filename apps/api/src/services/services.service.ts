// Desired state of services: every change is one transaction (spec, version, events), then a
// reconcile is enqueued. The reconcile worker, not this file, decides what tasks exist.
import { ForbiddenException, Inject, Injectable, Logger } from "@nestjs/common";
import { CLOCK } from "../common/clock";
import type { Clock } from "@flotilla/core";
import type { ServiceView, ServiceVirtualIp } from "@flotilla/api-types";
import {
  addedBindSources,
  affectsTasks,
  ConflictError,
  DISPATCHED_TASK_STATES,
  dueForAutoRebalance,
  InvalidError,
  normalizeServiceSpec,
  startUpdate,
  validateServiceName,
  type ServiceSpec,
  type ServiceSpecInput,
} from "@flotilla/core";
import { PrismaService } from "../database/prisma.service";
import { EventsService } from "../events/events.service";
import type { Prisma, Service as ServiceRow } from "../generated/prisma/client";
import { QueuesService } from "../queues/queues.service";
import { assertReferencesExist } from "../secrets/secret-references";
import { SecretsService } from "../secrets/secrets.service";
import { NetworksRepository } from "../networks/networks.repository";
import { queuedAfterCommit } from "../common/unavailable";
import { toListing, type Listing } from "../common/listing";
import { ListingViews } from "../common/listing-views";
import { restSpec } from "../common/type-agreement";
import { previousSpecOf, specOf, TX_OPTIONS, updateStateOf } from "./mapping";
import type { CreateServiceBody, UpdateServiceBody } from "./service-schemas";
import { ServicesRepository, type TaskCounts } from "./services.repository";

/** What the REST API returns for a service. */
function view(
  row: ServiceRow,
  counts: TaskCounts = { running: 0, live: 0 },
  registryAuth: { serverAddress: string } | null = null,
  virtualIps: ServiceVirtualIp[] = [],
): ServiceView {
  const spec = specOf(row);
  const previous = previousSpecOf(row);
  return {
    id: row.id,
    name: row.name,
    mode: spec.mode.kind,
    desired: spec.mode.kind === "replicated" ? spec.mode.replicas : counts.live,
    running: counts.running,
    version: row.version,
    taskVersion: row.taskVersion,
    spec: restSpec(spec),
    previousSpec: previous ? restSpec(previous) : null,
    updateState: updateStateOf(row) ?? null,
    registryAuth,
    virtualIps,
    createdAt: row.createdAt.toISOString(),
    updatedAt: row.updatedAt.toISOString(),
  };
}

/** Request fields → core's spec input; `replicas` is shorthand for replicated mode. */
function toInput(body: Omit<UpdateServiceBody, "replicas"> & { replicas?: number; name: string; image: string }): ServiceSpecInput {
  const { replicas, mode, registryAuth: _auth, ...rest } = body;
  if (replicas !== undefined && mode?.kind === "global")
    throw new InvalidError("replicas cannot be set for a global service", { field: "replicas" });
  return { ...rest, ...(replicas !== undefined ? { mode: { kind: "replicated", replicas } } : mode ? { mode } : {}) } as ServiceSpecInput;
}

/** A spec with a patch applied: objects merge one level deep, lists and maps are replaced. */
function merge(spec: ServiceSpec, patch: UpdateServiceBody): ServiceSpecInput {
  const { replicas, force: _force, registryAuth: _auth, rebalance: _rebalance, ...p } = patch;
  if (replicas !== undefined && (p.mode?.kind ?? spec.mode.kind) === "global") {
    throw new InvalidError("replicas cannot be set for a global service", { field: "replicas" });
  }
  return {
    ...spec,
    ...p,
    mode: replicas !== undefined ? { kind: "replicated", replicas } : (p.mode ?? spec.mode),
    resources: {
      reservations: { ...spec.resources.reservations, ...p.resources?.reservations },
      limits: { ...spec.resources.limits, ...p.resources?.limits },
    },
    placement: { ...spec.placement, ...p.placement },
    healthcheck: { ...spec.healthcheck, ...p.healthcheck },
    restartPolicy: { ...spec.restartPolicy, ...p.restartPolicy },
    updateConfig: { ...spec.updateConfig, ...p.updateConfig },
    rollbackConfig: { ...spec.rollbackConfig, ...p.rollbackConfig },
  };
}

const json = (v: unknown) => v as Prisma.InputJsonValue;

/** Who asks for a change: only an admin token may give tasks a path of the nodes' filesystem. */
export interface Caller {
  readonly admin: boolean;
}

/** A bind mount reaches into every node's filesystem (/etc, the agent's keys): admin only. */
function assertMayBind(current: ServiceSpec | undefined, next: ServiceSpec, caller: Caller): void {
  const added = addedBindSources(current, next);
  if (added.length && !caller.admin) {
    throw new ForbiddenException(`only an admin token may bind a node's paths into a service (mounts: ${added.join(", ")})`);
  }
}

// JSONB does not keep key order, so compare specs with keys sorted.
function canonical(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(canonical);
  if (v !== null && typeof v === "object") {
    return Object.fromEntries(
      Object.keys(v)
        .sort()
        .map((k) => [k, canonical((v as Record<string, unknown>)[k])]),
    );
  }
  return v;
}
const sameSpec = (a: ServiceSpec, b: ServiceSpec) => JSON.stringify(canonical(a)) === JSON.stringify(canonical(b));

@Injectable()
export class ServicesService {
  constructor(
    private readonly prisma: PrismaService,
    private readonly repo: ServicesRepository,
    private readonly events: EventsService,
    private readonly queues: QueuesService,
    private readonly secrets: SecretsService,
    private readonly networks: NetworksRepository,
    @Inject(CLOCK) private readonly clock: Clock,
    private readonly listings: ListingViews,
  ) {}

  async create(body: CreateServiceBody, caller: Caller): Promise<ServiceView> {
    validateServiceName(body.name);
    const given = normalizeServiceSpec(toInput(body));
    assertMayBind(undefined, given, caller);
    const { row, evs } = await this.prisma
      .$transaction(async (tx) => {
        if (await tx.service.findUnique({ where: { name: given.name } }))
          throw new ConflictError(`a service named "${given.name}" already exists`, { field: "name" });
        // Networks are stored by id: a network removed and created again under its name is another one.
        const spec = { ...given, networks: await this.networks.resolve(tx, given.networks) };
        await this.repo.assertPortsFree(tx, spec);
        await assertReferencesExist(tx, spec);
        const row = await tx.service.create({
          data: { name: spec.name, mode: spec.mode.kind === "global" ? "GLOBAL" : "REPLICATED", spec: json(spec) },
        });
        await this.networks.syncVips(tx, row.id, spec);
        if (body.registryAuth) await this.secrets.setRegistryAuth(tx, row.id, body.registryAuth);
        const evs = await this.events.record(tx, [
          { kind: "service", subjectId: row.id, action: "create", data: { name: row.name, version: 1 } },
        ]);
        return { row, evs };
      }, TX_OPTIONS)
      .catch((e: unknown) => {
        // Two creates racing past the check: the unique index decides.
        if ((e as { code?: string }).code === "P2002" && (e as { meta?: { modelName?: string } }).meta?.modelName !== "OverlayAddress")
          throw new ConflictError(`a service named "${given.name}" already exists`, { field: "name" });
        throw e;
      });
    await this.events.publish(evs);
    await queuedAfterCommit(this.queues.enqueueReconcile(row.id, "create"));
    const vips = (await this.networks.vipsOf([row.id])).get(row.id);
    return view(row, undefined, body.registryAuth ? { serverAddress: body.registryAuth.serverAddress } : null, vips);
  }

  /** list() as JSON with its ETag: this process's copy while it holds (common/listing-views.ts), else read. */
  listing(): Listing | Promise<Listing> {
    return this.listings.read("services", "", async () => toListing(await this.list()));
  }

  async list(): Promise<ServiceView[]> {
    const rows = await this.repo.list();
    const counts = await this.repo.counts(rows.map((r) => r.id));
    const auths = await this.secrets.registryAuthViews(rows.map((r) => r.id));
    const vips = await this.networks.vipsOf(rows.map((r) => r.id));
    return rows.map((r) => view(r, counts.get(r.id), auths.get(r.id) ?? null, vips.get(r.id)));
  }

  async get(ref: string): Promise<ServiceView> {
    const row = await this.repo.find(ref);
    const auth = (await this.secrets.registryAuthViews([row.id])).get(row.id) ?? null;
    return view(row, (await this.repo.counts([row.id])).get(row.id), auth, (await this.networks.vipsOf([row.id])).get(row.id));
  }

  /**
   * Applies a patch. `version` always moves; `taskVersion` only when the change reaches the
   * containers (libs/core affectsTasks), so a scale never restarts replicas.
   */
  async update(ref: string, patch: UpdateServiceBody, caller: Caller, action = "update"): Promise<ServiceView> {
    if (patch.rebalance) return this.rebalance(ref, patch);
    const result = await this.prisma.$transaction(async (tx) => {
      const row = await this.repo.findForUpdate(tx, ref);
      const current = specOf(row);
      const merged = normalizeServiceSpec({ ...merge(current, patch), name: row.name });
      const next = { ...merged, networks: await this.networks.resolve(tx, merged.networks) };
      // New credentials replace the old ones; alone, they change no task (the next pull uses them).
      if (patch.registryAuth) await this.secrets.setRegistryAuth(tx, row.id, patch.registryAuth);
      if (sameSpec(next, current) && !patch.force) return { row, evs: [] };
      assertMayBind(current, next, caller);
      if (next.mode.kind !== current.mode.kind)
        throw new InvalidError("the mode of a service cannot change: remove and create it again", { field: "mode" });
      await this.repo.assertPortsFree(tx, next);
      await assertReferencesExist(tx, next);
      await this.networks.syncVips(tx, row.id, next);
      // A forced update replaces every task, as a new task version does.
      const bump = affectsTasks(current, next) || !!patch.force;
      const updated = await tx.service.update({
        where: { id: row.id },
        data: {
          spec: json(next),
          previousSpec: json(current),
          version: row.version + 1,
          ...(bump ? { taskVersion: row.taskVersion + 1 } : {}),
        },
      });
      const evs = await this.events.record(tx, [
        {
          kind: "service",
          subjectId: row.id,
          action,
          data: {
            name: row.name,
            version: updated.version,
            taskVersion: updated.taskVersion,
            ...(next.mode.kind === "replicated" ? { replicas: next.mode.replicas } : {}),
          },
        },
      ]);
      return { row: updated, evs };
    }, TX_OPTIONS);
    if (result.evs.length) {
      await this.events.publish(result.evs);
      await queuedAfterCommit(this.queues.enqueueReconcile(result.row.id, action));
    }
    return this.get(result.row.id);
  }

  /**
   * Starts a rebalance: a new task version with the same spec, whose update replaces only the
   * tasks the first reconcile finds misplaced (core's rebalanceMoves), batch by batch.
   */
  private async rebalance(ref: string, patch: UpdateServiceBody, reason?: string): Promise<ServiceView> {
    const others = Object.keys(patch).filter((k) => k !== "rebalance");
    if (others.length) {
      throw new InvalidError(`rebalance changes nothing else: send it alone (also given: ${others.join(", ")})`, { field: "rebalance" });
    }
    const now = this.clock.now();
    const { row, evs } = await this.prisma.$transaction(async (tx) => {
      const row = await this.repo.findForUpdate(tx, ref);
      if (specOf(row).mode.kind === "global") {
        throw new InvalidError(`service ${row.name} is global: it runs one task per node, there is nothing to rebalance`, {
          field: "rebalance",
        });
      }
      // Every task running the current spec stays current, but for those the rebalance moves.
      const prev = updateStateOf(row);
      const equivalent = [row.taskVersion, ...(prev?.targetVersion === row.taskVersion ? prev.equivalentVersions : [])];
      const taskVersion = row.taskVersion + 1;
      const update = startUpdate(taskVersion, now, { rebalance: true, equivalentVersions: equivalent });
      const updated = await tx.service.update({
        where: { id: row.id },
        data: { version: row.version + 1, taskVersion, updateState: json(update) },
      });
      const evs = await this.events.record(tx, [
        {
          kind: "service",
          subjectId: row.id,
          action: "rebalance",
          data: { name: row.name, version: updated.version, taskVersion, ...(reason ? { reason } : {}) },
        },
      ]);
      return { row: updated, evs };
    }, TX_OPTIONS);
    await this.events.publish(evs);
    await queuedAfterCommit(this.queues.enqueueReconcile(row.id, "rebalance"));
    return this.get(row.id);
  }

  /**
   * After a node joined or came back: a rebalance of every service whose policy is auto (and
   * that no update is moving right now). Returns the names of those started.
   */
  async rebalanceAuto(reason: string): Promise<string[]> {
    const started: string[] = [];
    for (const row of await this.repo.list()) {
      if (!dueForAutoRebalance(specOf(row), updateStateOf(row) ?? null)) continue;
      try {
        await this.rebalance(row.id, { rebalance: true }, reason);
        started.push(row.name);
      } catch (e) {
        // One service's failure (say, removed meanwhile) must not keep the others where they are.
        new Logger("services").warn(`automatic rebalance of ${row.name} (${reason}): ${(e as Error).message}`);
      }
    }
    return started;
  }

  async scale(ref: string, replicas: number, caller: Caller): Promise<ServiceView> {
    const row = await this.repo.find(ref);
    if (specOf(row).mode.kind === "global")
      throw new InvalidError(`service ${row.name} is global: it cannot be scaled`, { field: "replicas" });
    return this.update(row.id, { replicas }, caller, "scale");
  }

  /** Returns to the previous spec, as a new version, replacing tasks with the rollback config. */
  async rollback(ref: string): Promise<ServiceView> {
    const now = this.clock.now();
    const { row, evs } = await this.prisma.$transaction(async (tx) => {
      const row = await this.repo.findForUpdate(tx, ref);
      const current = specOf(row);
      const stored = previousSpecOf(row);
      if (!stored) throw new ConflictError(`service ${row.name} has no previous spec to roll back to`);
      const previous = { ...stored, networks: await this.networks.resolve(tx, stored.networks) };
      await this.networks.syncVips(tx, row.id, previous);
      await this.repo.assertPortsFree(tx, previous);
      await assertReferencesExist(tx, previous);
      const bump = affectsTasks(current, previous);
      const taskVersion = row.taskVersion + (bump ? 1 : 0);
      // The previous spec's tasks ran at the task version before this one; they are up to date
      // again and must not be replaced (the rollback only replaces what changed).
      const update = bump ? startUpdate(taskVersion, now, { rollback: true, equivalentVersions: [row.taskVersion - 1] }) : undefined;
      const updated = await tx.service.update({
        where: { id: row.id },
        data: {
          spec: json(previous),
          previousSpec: json(current),
          version: row.version + 1,
          taskVersion,
          ...(update ? { updateState: json(update) } : {}),
        },
      });
      const evs = await this.events.record(tx, [
        { kind: "service", subjectId: row.id, action: "rollback", data: { name: row.name, version: updated.version, taskVersion } },
      ]);
      return { row: updated, evs };
    }, TX_OPTIONS);
    await this.events.publish(evs);
    await queuedAfterCommit(this.queues.enqueueReconcile(row.id, "rollback"));
    return this.get(row.id);
  }

  /**
   * Removes the service and its tasks. Their containers are stopped right after the commit;
   * anything missed (an agent that was unreachable) is a stray the next heartbeat removes.
   */
  async remove(ref: string): Promise<void> {
    const { evs, running, grace } = await this.prisma.$transaction(async (tx) => {
      const row = await this.repo.findForUpdate(tx, ref);
      const running = await tx.task.findMany({
        where: { serviceId: row.id, containerId: { not: null }, state: { in: [...DISPATCHED_TASK_STATES] } },
        select: { nodeId: true, containerId: true },
      });
      await tx.service.delete({ where: { id: row.id } });
      await tx.secret.deleteMany({ where: { kind: "REGISTRY_AUTH", name: row.id } });
      const evs = await this.events.record(tx, [
        { kind: "service", subjectId: row.id, action: "remove", data: { name: row.name, tasks: running.length } },
      ]);
      return { evs, running, grace: specOf(row).stopGracePeriodMs };
    }, TX_OPTIONS);
    await this.events.publish(evs);
    // Best effort: a container missed here (Redis down, an agent away) is a stray, which the
    // node's next full heartbeat fold finds and removes.
    const byNode = new Map<string, string[]>();
    for (const t of running) if (t.nodeId) byNode.set(t.nodeId, [...(byNode.get(t.nodeId) ?? []), t.containerId!]);
    await Promise.all(
      [...byNode].map(([nodeId, containers]) => this.queues.enqueueRemove({ nodeId, containers, graceMs: grace }).catch(() => undefined)),
    );
  }
}
