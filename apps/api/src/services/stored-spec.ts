// The `spec` and `previousSpec` JSON columns, parsed when read rather than cast: a row that is not
// a whole ServiceSpec (edited by hand, written by an older version) fails loudly, naming the
// service and the field, instead of reaching the scheduler as undefined. Every spec was
// normalised by core when written, so this checks shape only; type-agreement.ts checks the
// schema's type equals core's ServiceSpec.
import { UnavailableError, type ServiceSpec } from "@flotilla/core";
import { z } from "zod";

const amounts = z.object({ nanoCpus: z.number(), memoryBytes: z.number() });
const updateConfig = z.object({
  parallelism: z.number(),
  delayMs: z.number(),
  monitorMs: z.number(),
  failureAction: z.enum(["pause", "continue", "rollback"]),
  maxFailureRatio: z.number(),
  order: z.enum(["stop-first", "start-first"]),
});

const secretReference = z.object({ source: z.string(), target: z.string(), uid: z.string(), gid: z.string(), mode: z.number() });

export const StoredServiceSpec = z.object({
  name: z.string(),
  image: z.string(),
  command: z.array(z.string()),
  args: z.array(z.string()),
  env: z.record(z.string(), z.string()),
  labels: z.record(z.string(), z.string()),
  // Specs written before these existed have none: the image's defaults.
  containerLabels: z.record(z.string(), z.string()).default({}),
  hostname: z.string().default(""),
  user: z.string().default(""),
  workdir: z.string().default(""),
  mode: z.discriminatedUnion("kind", [
    z.object({ kind: z.literal("replicated"), replicas: z.number() }),
    z.object({ kind: z.literal("global") }),
  ]),
  resources: z.object({ reservations: amounts, limits: amounts.extend({ pids: z.number().optional() }) }),
  ports: z.array(
    z.object({
      published: z.number(),
      target: z.number(),
      protocol: z.enum(["tcp", "udp"]),
      // Specs written before publish modes existed have none: those ports were ingress ports.
      mode: z.enum(["ingress", "host"]).default("ingress"),
      traffic: z.enum(["cluster", "local"]).optional(),
    }),
  ),
  // Specs written before mounts existed have none.
  mounts: z
    .array(
      z.object({
        type: z.enum(["volume", "bind", "tmpfs"]),
        source: z.string().optional(),
        target: z.string(),
        readOnly: z.boolean(),
        tmpfsSizeBytes: z.number().optional(),
      }),
    )
    .default([]),
  // Specs written before secrets and configs reached tasks have none.
  secrets: z.array(secretReference).default([]),
  configs: z.array(secretReference).default([]),
  // Specs written before health checks existed have the image's.
  healthcheck: z
    .object({
      test: z.array(z.string()),
      intervalMs: z.number(),
      timeoutMs: z.number(),
      startPeriodMs: z.number(),
      retries: z.number(),
    })
    .default({ test: [], intervalMs: 0, timeoutMs: 0, startPeriodMs: 0, retries: 0 }),
  placement: z.object({
    constraints: z.array(z.string()),
    preferences: z.array(z.object({ spread: z.string() })),
    maxReplicasPerNode: z.number().optional(),
  }),
  restartPolicy: z.object({
    condition: z.enum(["none", "on-failure", "any"]),
    delayMs: z.number(),
    maxAttempts: z.number(),
    windowMs: z.number(),
  }),
  updateConfig,
  rollbackConfig: updateConfig,
  stopGracePeriodMs: z.number(),
  // Specs written before the policy existed are rebalanced only when asked.
  rebalancePolicy: z.enum(["manual", "auto"]).default("manual"),
  // Specs written before overlay networks existed join none and resolve by VIP.
  networks: z.array(z.object({ target: z.string(), aliases: z.array(z.string()) })).default([]),
  endpointMode: z.enum(["vip", "dnsrr"]).default("vip"),
});

/** A stored spec column as core's ServiceSpec; UnavailableError naming the service and field when it is not one. */
export function parseStoredSpec(value: unknown, what: string): ServiceSpec {
  const result = StoredServiceSpec.safeParse(value);
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  const field = issue.path.join(".") || "(root)";
  throw new UnavailableError(`${what}: the stored spec is not a valid service spec (${field}: ${issue.message})`, { field });
}
