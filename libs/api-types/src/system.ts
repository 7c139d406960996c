/** One record of `GET /api/v1/events` (Server-Sent Events; the SSE `event` is `kind`, its `id` is `id`). */
export interface ApiEvent<D = Record<string, unknown>> {
  /** A whole number as a string; `?since=<id>` replays what came after it. */
  id: string;
  at: string;
  kind: "machine" | "node" | "service" | "task" | "token" | (string & {});
  subjectId: string | null;
  action: string;
  data: D;
}

/** `GET /api/v1/health` (no token needed; 503 with the same body when degraded). */
export interface HealthView {
  status: "ok" | "degraded";
  version: string;
  role: string;
  postgres: { ok: boolean; error?: string };
  redis: { ok: boolean; error?: string };
}

/** `GET /api/v1/control-plane`: the replicas of the control plane, as configured. */
export interface ControlPlaneView {
  /** Every API replica's URL as users reach it (FLOTILLA_PUBLIC_URLS); empty when not configured. */
  apiUrls: string[];
  /** Every replica's URL as agents reach it (FLOTILLA_AGENT_API_URL); empty when agents do not report. */
  agentApiUrls: string[];
}

/**
 * `GET /api/v1/control-plane/replicas`: the API replicas Flotilla installed on manager machines
 * (`ctl node promote --control-plane`); running ones are in ControlPlaneView's lists.
 */
export interface ControlPlaneReplicaView {
  machine: string;
  /** The machine's node's hostname; null before its agent registered. */
  node: string | null;
  /** As users reach it; also as agents reach it (agentApiUrl). */
  apiUrl: string;
  agentApiUrl: string;
  /** installing | running | removing | failed */
  state: string;
  /** The version it runs, or why it failed. */
  message: string | null;
  updatedAt: string;
}

/** `GET /api/v1/tokens` (secrets are never returned). */
export interface TokenView {
  id: string;
  name: string;
  role: string;
  createdAt: string;
  lastUsedAt: string | null;
}

/** `POST /api/v1/tokens`: the only answer that carries the secret. */
export interface CreatedToken extends TokenView {
  token: string;
}
