// The Engine API create body dispatch sends for a task, and where its ingress ports answer.
import { isHostPort, isIngressPort, type ServiceSpec, type TaskEndpoint } from "@flotilla/core";
import { TASK_LABELS, type ContainerCreateBody } from "@flotilla/engine-client";
import type { Service as ServiceRow, Task as TaskRow } from "../generated/prisma/client";

/** A task's address on one overlay network, with the names it answers to there. */
export interface BodyAttachment {
  readonly networkId: string;
  readonly network: string;
  readonly ip: string;
  readonly aliases: readonly string[];
}

/** The Engine API create body for a task of `service`, attached to `attachments` (its overlay networks). */
export function containerBody(
  service: Pick<ServiceRow, "id">,
  spec: ServiceSpec,
  task: Pick<TaskRow, "id" | "slot">,
  attachments: readonly BodyAttachment[] = [],
): ContainerCreateBody {
  // Ingress ports take a dynamic host port: the mesh on every node forwards the published port
  // to it. Host ports are the published port itself.
  const ports = spec.ports.map((p) => [`${p.target}/${p.protocol}`, isHostPort(p) ? String(p.published) : ""] as const);
  const limits = spec.resources.limits;
  // A volume is the node's: the agent creates it on first use and keeps it when the container
  // goes, so the next task on this node finds the data.
  const mounts = spec.mounts.map((m) => ({
    Type: m.type,
    ...(m.source !== undefined ? { Source: m.source } : {}),
    Target: m.target,
    ...(m.readOnly ? { ReadOnly: true } : {}),
    ...(m.tmpfsSizeBytes !== undefined ? { TmpfsOptions: { SizeBytes: m.tmpfsSizeBytes } } : {}),
  }));
  const h = spec.healthcheck;
  const ns = (ms: number) => ms * 1_000_000;
  const healthcheck =
    h.test.length || h.intervalMs || h.timeoutMs || h.startPeriodMs || h.retries
      ? {
          ...(h.test.length ? { Test: [...h.test] } : {}),
          ...(h.intervalMs ? { Interval: ns(h.intervalMs) } : {}),
          ...(h.timeoutMs ? { Timeout: ns(h.timeoutMs) } : {}),
          ...(h.startPeriodMs ? { StartPeriod: ns(h.startPeriodMs) } : {}),
          ...(h.retries ? { Retries: h.retries } : {}),
        }
      : undefined;
  return {
    Image: spec.image,
    ...(spec.command.length ? { Entrypoint: [...spec.command] } : {}),
    ...(spec.args.length ? { Cmd: [...spec.args] } : {}),
    Env: Object.entries(spec.env).map(([k, v]) => `${k}=${v}`),
    ...(spec.hostname ? { Hostname: spec.hostname } : {}),
    ...(spec.user ? { User: spec.user } : {}),
    ...(spec.workdir ? { WorkingDir: spec.workdir } : {}),
    Labels: {
      ...spec.labels,
      ...spec.containerLabels,
      [TASK_LABELS.serviceId]: service.id,
      [TASK_LABELS.taskId]: task.id,
      [TASK_LABELS.slot]: String(task.slot ?? ""),
    },
    ...(ports.length ? { ExposedPorts: Object.fromEntries(ports.map(([k]) => [k, {}])) } : {}),
    ...(healthcheck ? { Healthcheck: healthcheck } : {}),
    HostConfig: {
      ...(limits.memoryBytes ? { Memory: limits.memoryBytes } : {}),
      ...(limits.nanoCpus ? { NanoCpus: limits.nanoCpus } : {}),
      ...(limits.pids ? { PidsLimit: limits.pids } : {}),
      ...(ports.length ? { PortBindings: Object.fromEntries(ports.map(([k, hostPort]) => [k, [{ HostPort: hostPort }]])) } : {}),
      ...(mounts.length ? { Mounts: mounts } : {}),
    },
    StopTimeout: Math.ceil(spec.stopGracePeriodMs / 1000),
    // The agent attaches the container to each at create (libs/core overlay-table.ts).
    ...(attachments.length
      ? {
          NetworkingConfig: {
            EndpointsConfig: Object.fromEntries(
              attachments.map((a) => [a.network, { NetworkID: a.networkId, IPAMConfig: { IPv4Address: a.ip }, Aliases: [...a.aliases] }]),
            ),
          },
        }
      : {}),
  };
}

/** Where the container's ingress ports answer on its node, from an inspect's NetworkSettings.Ports. */
export function ingressEndpoints(
  spec: ServiceSpec,
  ports: Record<string, { HostIp?: string; HostPort: string }[] | null> | undefined,
): TaskEndpoint[] {
  const out: TaskEndpoint[] = [];
  for (const p of spec.ports.filter(isIngressPort)) {
    const hostPort = Number(ports?.[`${p.target}/${p.protocol}`]?.[0]?.HostPort);
    if (Number.isInteger(hostPort) && hostPort > 0) out.push({ target: p.target, protocol: p.protocol, hostPort });
  }
  return out;
}
