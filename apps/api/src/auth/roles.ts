// What each kind of API token may call. Admin tokens (ctl, the console, CI) may call everything;
// an agent token, which a machine's agent gets by trading its one-time join token, may only
// report for its own machine. Anything else is refused, so a token leaked from a machine cannot
// drive the control plane.
import { createHash } from "node:crypto";

export type TokenRole = "admin" | "agent";

/**
 * The routes (method + Fastify route pattern) an agent token may call. The join endpoint itself
 * is public (the join token is its credential). Add a route here when agents need another one.
 */
export const AGENT_ROUTES: ReadonlySet<string> = new Set(["POST /api/v1/nodes/heartbeat"]);

/** The API token name of a machine's agent (token names are at most 63 characters). */
export function agentTokenName(machine: string): string {
  const name = `agent-${machine}`;
  return name.length <= 63 ? name : `agent-${machine.slice(0, 46)}-${createHash("sha256").update(machine).digest("hex").slice(0, 10)}`;
}

/**
 * Why a token may not make this call, or null when it may. `body` is the parsed request body:
 * an agent reports only under its own machine's host name, never as another node.
 */
export function refusal(token: { name: string; role: string }, method: string, route: string | undefined, body: unknown): string | null {
  if (token.role === "admin") return null;
  if (token.role !== "agent") return `token "${token.name}" has the unknown role "${token.role}"`;
  const call = `${method.toUpperCase()} ${route ?? "?"}`;
  if (!AGENT_ROUTES.has(call)) return `an agent token may not call ${call}; agents may only send heartbeats`;
  const hostname = (body as { hostname?: unknown } | undefined)?.hostname;
  if (typeof hostname === "string" && agentTokenName(hostname) !== token.name) {
    return `agent token "${token.name}" may not report as "${hostname}"`;
  }
  return null;
}
