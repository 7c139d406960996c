export type NodeStatus = "ready" | "down" | "unknown";
export type NodeAvailability = "active" | "pause" | "drain";
export type NodeRole = "worker" | "manager";

/** `GET /api/v1/nodes`, `GET /api/v1/nodes/{id}` (never the node's TLS material). */
export interface NodeView {
  id: string;
  hostname: string;
  role: NodeRole;
  status: NodeStatus;
  availability: NodeAvailability;
  labels: Record<string, string>;
  engineUrl: string | null;
  /** What the node offers to tasks. */
  resources: { nanoCpus: number; memoryBytes: number };
  lastHeartbeatAt: string | null;
  createdAt: string;
  /** Live tasks on the node (list and inspect). */
  tasks?: number;
}

/** `PATCH /api/v1/nodes/{id}`. */
export interface NodeUpdateRequest {
  availability?: NodeAvailability;
  role?: NodeRole;
  labelAdd?: Record<string, string>;
  labelRm?: string[];
}
