// Every request that may change state leaves an `audit` event: who (token name and role), what
// (method, route, path), and how it ended (HTTP status), refusals included. Agents' heartbeats
// are left out: they only report facts, many times a minute per node.
import { Logger } from "@nestjs/common";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import type { EventInput, EventsService } from "../events/events.service";

const MUTATING = new Set(["POST", "PUT", "PATCH", "DELETE"]);
const NOT_AUDITED = new Set(["POST /api/v1/nodes/heartbeat"]);

export interface AuditedRequest {
  method: string;
  route?: string;
  path: string;
  params?: unknown;
  tokenName?: string;
  tokenRole?: string;
}

/** The audit event of a finished request, or null when the request changes nothing. Pure. */
export function auditEvent(req: AuditedRequest, status: number): EventInput | null {
  const method = req.method.toUpperCase();
  if (!MUTATING.has(method)) return null;
  const route = req.route ?? req.path;
  if (NOT_AUDITED.has(`${method} ${route}`)) return null;
  const params = req.params && typeof req.params === "object" ? (req.params as Record<string, unknown>) : {};
  return {
    kind: "audit",
    subjectId: null,
    action: `${method} ${route}`,
    data: {
      path: req.path,
      status,
      token: req.tokenName ?? null,
      role: req.tokenRole ?? null,
      ...(Object.keys(params).length ? { params } : {}),
    },
  };
}

export function installAuditLog(fastify: FastifyInstance, events: EventsService): void {
  const logger = new Logger("audit");
  fastify.addHook("onResponse", async (req: FastifyRequest & { tokenName?: string; tokenRole?: string }, reply: FastifyReply) => {
    const event = auditEvent(
      {
        method: req.method,
        route: req.routeOptions?.url,
        path: req.url.split("?")[0]!,
        params: req.params,
        tokenName: req.tokenName,
        tokenRole: req.tokenRole,
      },
      reply.statusCode,
    );
    if (!event) return;
    await events.emit(event).catch((e: Error) => logger.warn(`could not record ${event.action}: ${e.message}`));
  });
}
