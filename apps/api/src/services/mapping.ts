// Between Prisma rows and libs/core's plain types. Prisma enums are upper case, core's lower case
// (except task states, which are the same words); BigInt resources become numbers (core's
// contract: every realistic byte or nano-CPU count is far below 2^53).
import type { DesiredState, NodeAvailability, NodeRole, NodeStatus, NodeView, TaskView } from "@flotilla/api-types";
import type { NodeInfo, ServiceSpec, Task, TaskState, UpdateState } from "@flotilla/core";
import type { Node as NodeRow, Service as ServiceRow, Task as TaskRow } from "../generated/prisma/client";
import { parseStoredSpec } from "./stored-spec";

export function toCoreTask(t: TaskRow): Task {
  return {
    id: t.id,
    serviceId: t.serviceId,
    ...(t.slot !== null ? { slot: t.slot } : {}),
    ...(t.nodeId !== null ? { nodeId: t.nodeId } : {}),
    specVersion: t.specVersion,
    state: t.state as TaskState,
    desiredState: t.desiredState === "RUNNING" ? "running" : "shutdown",
    createdAt: t.createdAt.getTime(),
    updatedAt: t.updatedAt.getTime(),
    ...(t.startedAt ? { startedAt: t.startedAt.getTime() } : {}),
    ...(t.finishedAt ? { finishedAt: t.finishedAt.getTime() } : {}),
    ...(t.exitCode !== null ? { exitCode: t.exitCode } : {}),
    ...(t.error !== null ? { error: t.error } : {}),
    ...(t.message !== null ? { message: t.message } : {}),
  };
}

export function toCoreNode(n: NodeRow): NodeInfo {
  return {
    id: n.id,
    hostname: n.hostname,
    role: n.role === "MANAGER" ? "manager" : "worker",
    status: n.status.toLowerCase() as NodeInfo["status"],
    availability: n.availability.toLowerCase() as NodeInfo["availability"],
    labels: (n.labels ?? {}) as Record<string, string>,
    resources: { nanoCpus: Number(n.cpuNanos), memoryBytes: Number(n.memoryBytes) },
    ...(n.address ? { address: n.address } : {}),
  };
}

/** The row's spec, parsed (see stored-spec.ts). */
export const specOf = (s: Pick<ServiceRow, "spec"> & { id?: string }): ServiceSpec => parseStoredSpec(s.spec, `service ${s.id ?? "?"}`);
export const previousSpecOf = (s: Pick<ServiceRow, "previousSpec"> & { id?: string }): ServiceSpec | undefined =>
  s.previousSpec === null || s.previousSpec === undefined
    ? undefined
    : parseStoredSpec(s.previousSpec, `service ${s.id ?? "?"} (previous spec)`);
export const updateStateOf = (s: Pick<ServiceRow, "updateState">): UpdateState | undefined =>
  (s.updateState ?? undefined) as unknown as UpdateState | undefined;

/** A task's display name, as docker prints it: `web.1` (replicated) or `web.<node>` (global). */
export function taskName(serviceName: string, t: Pick<TaskRow, "slot" | "nodeId" | "id">): string {
  return `${serviceName}.${t.slot ?? (t.nodeId ?? t.id).slice(0, 8)}`;
}

/** What the REST API returns for a task. */
export function taskView(t: TaskRow, serviceName: string, nodeHostname: string | null): TaskView {
  return {
    id: t.id,
    name: taskName(serviceName, t),
    serviceId: t.serviceId,
    serviceName,
    slot: t.slot,
    nodeId: t.nodeId,
    nodeHostname,
    specVersion: t.specVersion,
    state: t.state,
    desiredState: t.desiredState.toLowerCase() as DesiredState,
    message: t.message,
    error: t.error,
    containerId: t.containerId,
    exitCode: t.exitCode,
    startedAt: t.startedAt?.toISOString() ?? null,
    finishedAt: t.finishedAt?.toISOString() ?? null,
    createdAt: t.createdAt.toISOString(),
    updatedAt: t.updatedAt.toISOString(),
  };
}

/** What the REST API returns for a node (never its TLS material). */
export function nodeView(n: NodeRow, tasks?: number): NodeView {
  return {
    id: n.id,
    hostname: n.hostname,
    role: n.role.toLowerCase() as NodeRole,
    status: n.status.toLowerCase() as NodeStatus,
    availability: n.availability.toLowerCase() as NodeAvailability,
    labels: (n.labels ?? {}) as Record<string, string>,
    engineUrl: n.engineUrl,
    resources: { nanoCpus: Number(n.cpuNanos), memoryBytes: Number(n.memoryBytes) },
    lastHeartbeatAt: n.lastHeartbeatAt?.toISOString() ?? null,
    createdAt: n.createdAt.toISOString(),
    ...(tasks !== undefined ? { tasks } : {}),
  };
}

/** Task states in which a task holds (or may hold) a container on its node: core's list. */
export { ACTIVE_TASK_STATES as ACTIVE_STATES } from "@flotilla/core";

/**
 * Options of every transaction here: under load (a thousand agents beating, a scale to
 * thousands) the pool is busy, and waiting for a connection is better than failing the
 * request or the heartbeat after Prisma's default 2 s.
 */
export const TX_OPTIONS = { maxWait: 10_000, timeout: 30_000 } as const;
