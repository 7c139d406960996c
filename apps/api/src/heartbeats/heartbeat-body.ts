// What an agent sends in a heartbeat, as the API validates it, and who sent it: shared by the
// controller, the service and the batched touch (ready-touch.ts) without importing each other.
import { z } from "zod";

export const HeartbeatBody = z.object({
  nodeId: z.string().uuid().optional(),
  hostname: z.string().min(1).max(253),
  engineUrl: z.string().regex(/^(https?|unix):\/\//, "must be an http://, https:// or unix:// URL"),
  resources: z.object({ nanoCpus: z.number().int().min(0), memoryBytes: z.number().int().min(0) }),
  labels: z.record(z.string(), z.string()).default({}),
  /** The ingress table the agent applied last: the reply carries a table only when it changed. */
  ingressVersion: z.string().max(200).optional(),
  /** The overlay table the agent applied last ("" for none): given, the reply carries the node's table when it changed. */
  networksVersion: z.string().max(200).optional(),
  containers: z
    .array(
      z.object({
        id: z.string().min(1),
        labels: z.record(z.string(), z.string()).default({}),
        state: z.enum(["created", "running", "exited"]),
        exitCode: z.number().int().optional(),
        oomKilled: z.boolean().optional(),
        health: z.enum(["starting", "healthy", "unhealthy"]).optional(),
        healthOutput: z.string().max(4096).optional(),
        startedAt: z.string().optional(),
        finishedAt: z.string().optional(),
      }),
    )
    .max(100_000),
});
export type HeartbeatBody = z.infer<typeof HeartbeatBody>;

/** Who sent a heartbeat: an admin token may name the engine URL of a node without a machine. */
export interface Reporter {
  admin: boolean;
}
