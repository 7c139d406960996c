// Request shapes of /api/v1/services. zod checks the JSON types (naming the field); libs/core's
// normalizeServiceSpec/validateServiceSpec then check the meaning (ranges, constraints, ports),
// so a rule is written once, for the CLI and the API alike.
import type { SchemaObject } from "@nestjs/swagger/dist/interfaces/open-api-spec.interface";
import { z } from "zod";

const amounts = z
  .object({ nanoCpus: z.number().int().min(0), memoryBytes: z.number().int().min(0) })
  .partial()
  .strict();
const updateConfig = z
  .object({
    parallelism: z.number().int().min(0),
    delayMs: z.number().int().min(0),
    monitorMs: z.number().int().min(0),
    failureAction: z.enum(["pause", "continue", "rollback"]),
    maxFailureRatio: z.number().min(0).max(1),
    order: z.enum(["stop-first", "start-first"]),
  })
  .partial()
  .strict();
const stringMap = z.record(z.string(), z.string());
const secretReferences = z
  .array(
    z
      .object({
        source: z.string(),
        target: z.string().optional(),
        uid: z.string().optional(),
        gid: z.string().optional(),
        mode: z.number().int().optional(),
      })
      .strict(),
  )
  .optional();

/** The spec fields a create or an update may set, all optional (name and image are added for create). */
const specFields = {
  command: z.array(z.string()).optional(),
  args: z.array(z.string()).optional(),
  env: stringMap.optional(),
  labels: stringMap.optional(),
  containerLabels: stringMap.optional(),
  hostname: z.string().optional(),
  user: z.string().optional(),
  workdir: z.string().optional(),
  mode: z
    .discriminatedUnion("kind", [
      z.object({ kind: z.literal("replicated"), replicas: z.number().int().min(0) }).strict(),
      z.object({ kind: z.literal("global") }).strict(),
    ])
    .optional(),
  replicas: z.number().int().min(0).optional(),
  resources: z
    .object({ reservations: amounts, limits: amounts.extend({ pids: z.number().int().min(0) }).partial() })
    .partial()
    .strict()
    .optional(),
  ports: z
    .array(
      z
        .object({
          published: z.number().int(),
          target: z.number().int(),
          protocol: z.enum(["tcp", "udp"]).default("tcp"),
          mode: z.enum(["ingress", "host"]).default("ingress"),
          traffic: z.enum(["cluster", "local"]).optional(),
        })
        .strict(),
    )
    .optional(),
  mounts: z
    .array(
      z
        .object({
          type: z.enum(["volume", "bind", "tmpfs"]),
          source: z.string().optional(),
          target: z.string(),
          readOnly: z.boolean().optional(),
          tmpfsSizeBytes: z.number().int().optional(),
        })
        .strict(),
    )
    .optional(),
  secrets: secretReferences,
  configs: secretReferences,
  healthcheck: z
    .object({
      test: z.array(z.string()),
      intervalMs: z.number().int().min(0),
      timeoutMs: z.number().int().min(0),
      startPeriodMs: z.number().int().min(0),
      retries: z.number().int().min(0),
    })
    .partial()
    .strict()
    .optional(),
  placement: z
    .object({
      constraints: z.array(z.string()),
      preferences: z.array(z.object({ spread: z.string() }).strict()),
      maxReplicasPerNode: z.number().int().min(0),
    })
    .partial()
    .strict()
    .optional(),
  restartPolicy: z
    .object({
      condition: z.enum(["none", "on-failure", "any"]),
      delayMs: z.number().int().min(0),
      maxAttempts: z.number().int().min(0),
      windowMs: z.number().int().min(0),
    })
    .partial()
    .strict()
    .optional(),
  updateConfig: updateConfig.optional(),
  rollbackConfig: updateConfig.optional(),
  stopGracePeriodMs: z.number().int().min(0).optional(),
  rebalancePolicy: z.enum(["manual", "auto"]).optional(),
  networks: z.array(z.object({ target: z.string().min(1), aliases: z.array(z.string()).optional() }).strict()).optional(),
  endpointMode: z.enum(["vip", "dnsrr"]).optional(),
};

/** `--with-registry-auth`: not part of the spec (which is shown); stored encrypted on its own. */
const registryAuth = z
  .object({ username: z.string().min(1), password: z.string(), serverAddress: z.string().min(1) })
  .strict()
  .optional();

export const CreateServiceBody = z.object({ name: z.string().min(1), image: z.string().min(1), ...specFields, registryAuth }).strict();
export type CreateServiceBody = z.infer<typeof CreateServiceBody>;

/** PATCH: any spec field; `replicas` is shorthand for `mode: {kind: replicated, replicas}`. */
export const UpdateServiceBody = z
  .object({
    image: z.string().min(1).optional(),
    ...specFields,
    // Replace every task even when the spec is unchanged (`ctl service update --force`).
    force: z.boolean().optional(),
    registryAuth,
    // Move tasks so the spread matches what the scheduler would choose now (`--rebalance`).
    rebalance: z.boolean().optional(),
  })
  .strict();
export type UpdateServiceBody = z.infer<typeof UpdateServiceBody>;

export const ScaleBody = z.object({ replicas: z.number().int().min(0) }).strict();

export const TaskQuery = z
  .object({
    service: z.string().optional(),
    node: z.string().optional(),
    "desired-state": z.enum(["running", "shutdown"]).optional(),
  })
  .strict();

/** OpenAPI description of a service body (the zod schema is the source of truth). */
function secretsSchema(description: string, example: string): SchemaObject {
  return {
    type: "array",
    description,
    items: {
      type: "object",
      required: ["source"],
      properties: {
        source: { type: "string", example },
        target: { type: "string" },
        uid: { type: "string", default: "0" },
        gid: { type: "string", default: "0" },
        mode: { type: "integer", default: 0o444, description: "permission bits (292 = 0444)" },
      },
    },
  };
}

export const SERVICE_BODY_SCHEMA: SchemaObject = {
  type: "object",
  required: ["name", "image"],
  properties: {
    name: { type: "string", example: "web" },
    image: { type: "string", example: "nginx:1.27" },
    replicas: { type: "integer", example: 3, description: "shorthand for mode {kind: replicated, replicas}" },
    command: { type: "array", items: { type: "string" } },
    args: { type: "array", items: { type: "string" } },
    env: { type: "object", additionalProperties: { type: "string" } },
    labels: { type: "object", additionalProperties: { type: "string" } },
    containerLabels: { type: "object", additionalProperties: { type: "string" }, description: "labels of the tasks' containers only" },
    hostname: { type: "string", description: "the containers' host name (default: the container id)" },
    user: { type: "string", example: "1000:1000", description: "user[:group] the command runs as" },
    workdir: { type: "string", example: "/app" },
    mode: { type: "object", properties: { kind: { enum: ["replicated", "global"] }, replicas: { type: "integer" } } },
    resources: {
      type: "object",
      properties: {
        reservations: { type: "object", properties: { nanoCpus: { type: "integer" }, memoryBytes: { type: "integer" } } },
        limits: {
          type: "object",
          properties: { nanoCpus: { type: "integer" }, memoryBytes: { type: "integer" }, pids: { type: "integer" } },
        },
      },
    },
    ports: {
      type: "array",
      items: {
        type: "object",
        required: ["published", "target"],
        properties: {
          published: { type: "integer" },
          target: { type: "integer" },
          protocol: { enum: ["tcp", "udp"], default: "tcp" },
          mode: {
            enum: ["ingress", "host"],
            default: "ingress",
            description:
              "ingress: every node answers on the published port and forwards to any task (tcp only); host: only nodes running a task, one task per node",
          },
          traffic: {
            enum: ["cluster", "local"],
            default: "cluster",
            description:
              "ingress ports only. cluster: any task answers, on any node; local: only the receiving node's own tasks answer and they see the client's address (a node without one refuses)",
          },
        },
      },
    },
    mounts: {
      type: "array",
      description:
        "volume: a named volume of the task's node, created on first use and kept when the task is replaced; bind: a path of the node (admin tokens only); tmpfs: memory, gone with the task",
      items: {
        type: "object",
        required: ["type", "target"],
        properties: {
          type: { enum: ["volume", "bind", "tmpfs"] },
          source: { type: "string", example: "pgdata" },
          target: { type: "string", example: "/var/lib/postgresql/data" },
          readOnly: { type: "boolean", default: false },
          tmpfsSizeBytes: { type: "integer" },
        },
      },
    },
    secrets: secretsSchema(
      "stored secrets (POST /api/v1/secrets) each task gets as a read-only file on a tmpfs; a relative target is a file in /run/secrets (default /run/secrets/SOURCE)",
      "db_password",
    ),
    configs: secretsSchema(
      "stored configs (POST /api/v1/configs) each task gets as a read-only file; default target /SOURCE",
      "nginx.conf",
    ),
    healthcheck: {
      type: "object",
      description:
        "the tasks' health check: a task with one is RUNNING only once healthy (rolling updates wait for it, the ingress sends it traffic only then); an unhealthy task fails and is replaced. Zeros and an empty test take the image's HEALTHCHECK",
      properties: {
        test: {
          type: "array",
          items: { type: "string" },
          example: ["CMD-SHELL", "wget -q -O- http://localhost/health"],
          description:
            '[] the image\'s; ["NONE"] disables it; ["CMD", program, ...args]; ["CMD-SHELL", command] (needs /bin/sh in the image)',
        },
        intervalMs: { type: "integer", description: "0: the image's, else 30000" },
        timeoutMs: { type: "integer", description: "0: the image's, else 30000" },
        startPeriodMs: { type: "integer", description: "failures in this period after the start do not count" },
        retries: { type: "integer", description: "failures in a row that make the task unhealthy; 0: the image's, else 3" },
      },
    },
    placement: {
      type: "object",
      properties: {
        constraints: { type: "array", items: { type: "string", example: "node.labels.zone==a" } },
        preferences: { type: "array", items: { type: "object", properties: { spread: { type: "string", example: "node.labels.zone" } } } },
        maxReplicasPerNode: { type: "integer" },
      },
    },
    restartPolicy: { type: "object", description: "condition none|on-failure|any, delayMs, maxAttempts, windowMs" },
    updateConfig: { type: "object", description: "parallelism, delayMs, monitorMs, failureAction, maxFailureRatio, order" },
    rollbackConfig: { type: "object" },
    stopGracePeriodMs: { type: "integer" },
    rebalancePolicy: {
      enum: ["manual", "auto"],
      description: "auto: the service is rebalanced (as PATCH rebalance) whenever a node joins or comes back; default manual",
    },
    networks: {
      type: "array",
      description:
        "overlay networks the tasks join (replaces the list on PATCH): target is a network's name or id (stored as its id); the service gets a virtual IP on each unless endpointMode is dnsrr",
      items: {
        type: "object",
        required: ["target"],
        properties: { target: { type: "string", example: "backend" }, aliases: { type: "array", items: { type: "string" } } },
      },
    },
    endpointMode: {
      enum: ["vip", "dnsrr"],
      description: "vip (default): the service's name resolves to its virtual IP on each network; dnsrr: to its running tasks' addresses",
    },
    registryAuth: {
      type: "object",
      description:
        "credentials for the service's image pulls (ctl --with-registry-auth), stored encrypted and sent to the agents for this service's pulls only; never shown again",
      required: ["username", "password", "serverAddress"],
      properties: {
        username: { type: "string" },
        password: { type: "string" },
        serverAddress: { type: "string", example: "registry.example.com:5000" },
      },
    },
  },
};

/** OpenAPI description of a PATCH body: any spec field, and two that change no field. */
export const SERVICE_PATCH_SCHEMA: SchemaObject = {
  ...SERVICE_BODY_SCHEMA,
  required: [],
  properties: {
    ...SERVICE_BODY_SCHEMA.properties,
    force: { type: "boolean", description: "replace every task even when nothing changed" },
    rebalance: {
      type: "boolean",
      description:
        "alone: move tasks, a batch at a time (update parallelism, order, health), so the spread matches where the scheduler would put them now; replicated services only",
    },
  },
};
