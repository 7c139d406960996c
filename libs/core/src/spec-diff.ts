// Which spec changes reach the tasks. Tasks carry a spec version, and every task whose version is
// not current gets replaced by a rolling update — so the version that tasks carry must move only
// when something the container sees changes. Scaling, or editing the update policy, must not
// restart every replica.
import type { ServiceSpec } from "./types";

function sameJson(a: unknown, b: unknown): boolean {
  return JSON.stringify(canonical(a)) === JSON.stringify(canonical(b));
}

// Object key order must not make two equal specs differ (JSON columns do not keep it).
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

/** The part of a spec that running tasks are made of; the rest (mode, policies) is read live. */
export function taskSpecOf(spec: ServiceSpec): unknown {
  return {
    image: spec.image,
    command: spec.command,
    args: spec.args,
    env: spec.env,
    labels: spec.labels,
    containerLabels: spec.containerLabels,
    hostname: spec.hostname,
    user: spec.user,
    workdir: spec.workdir,
    resources: spec.resources,
    ports: spec.ports,
    mounts: spec.mounts,
    secrets: spec.secrets,
    configs: spec.configs,
    healthcheck: spec.healthcheck,
    placement: spec.placement,
    stopGracePeriodMs: spec.stopGracePeriodMs,
    // A task's attachments are made when its container is created.
    networks: spec.networks,
  };
}

/**
 * Whether going from `prev` to `next` changes what tasks run, so tasks need replacing: image,
 * command, args, env, labels, container labels, hostname, user,
 * workdir, resources, ports, mounts, secrets, configs, health check, placement, stop grace period,
 * networks (the endpoint mode changes DNS and VIPs only). Replicas, mode,
 * restart policy and update/rollback configs are read from the current spec by the orchestrator
 * and the planners, so changing them replaces nothing. The API bumps the task spec version (the
 * one passed to `orchestrate`) only when this is true.
 */
export function affectsTasks(prev: ServiceSpec, next: ServiceSpec): boolean {
  return !sameJson(taskSpecOf(prev), taskSpecOf(next));
}
