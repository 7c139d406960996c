// Every answer says how long the API took over it (`Server-Timing: app;dur=<ms>`, W3C Server
// Timing): from the request's arrival in this process to its answer being sent. A client that
// also times the round trip can then tell the API's share from its own and the network's
// (browsers show it in their developer tools; bench:control-plane's agents report both).
import type { FastifyInstance, FastifyRequest } from "fastify";

const ARRIVED = Symbol("arrived");
type Timed = FastifyRequest & { [ARRIVED]?: number };

/** The header's value for a request that arrived at `arrivedMs` (performance.now()) and ends at `nowMs`. */
export function serverTimingValue(arrivedMs: number, nowMs: number): string {
  return `app;dur=${Math.max(0, nowMs - arrivedMs).toFixed(1)}`;
}

export function installServerTiming(fastify: FastifyInstance): void {
  fastify.addHook("onRequest", async (req: Timed) => {
    req[ARRIVED] = performance.now();
  });
  fastify.addHook("onSend", async (req: Timed, reply) => {
    const arrived = req[ARRIVED];
    if (arrived !== undefined) void reply.header("server-timing", serverTimingValue(arrived, performance.now()));
  });
}
