/**
 * `flotilla-agent`: parses flags and environment, starts the agent, and closes it on SIGTERM or
 * SIGINT. Closing leaves containers running; the next start re-adopts them.
 */
import { DomainError } from "@flotilla/core";
import { startAgent } from "./agent";
import { HELP, parseArgs } from "./config";
import { heartbeatsFromEnv } from "./heartbeat";
import { HostNetwork } from "./network";

async function main(): Promise<void> {
  let options;
  try {
    options = parseArgs(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`flotilla-agent: ${(err as Error).message}\n`);
    process.exit(2);
  }
  if (!options) {
    process.stdout.write(HELP);
    return;
  }
  const log = (msg: string) => process.stderr.write(`flotilla-agent: ${msg}\n`);
  const agent = await startAgent({ ...options, log });
  const where = [
    agent.socketPath && `unix://${agent.socketPath}`,
    agent.tlsPort !== null && `tcp://${options.tls!.host}:${agent.tlsPort} (mutual TLS)`,
  ].filter(Boolean);
  log(`listening on ${where.join(" and ")}; root ${options.root}${agent.network ? "" : "; bridge networking unavailable"}`);
  const overlay = agent.network instanceof HostNetwork ? agent.network.overlay : undefined;
  const heartbeats = heartbeatsFromEnv(process.env, agent.containers, log, options.root, { chainPrefix: options.chainPrefix }, overlay);
  if (heartbeats) log(`reporting to ${process.env.FLOTILLA_API_URL} every ${heartbeats.intervalMs}ms`);
  let closing = false;
  const shutdown = (signal: string) => {
    if (closing) return;
    closing = true;
    log(`${signal}: closing (containers keep running)`);
    // The last beat must not race the listeners going away.
    Promise.resolve(heartbeats?.stop())
      .then(() => agent.close())
      .then(
        () => process.exit(0),
        (err) => {
          log(`close failed: ${(err as Error).message}`);
          process.exit(1);
        },
      );
  };
  process.on("SIGTERM", () => shutdown("SIGTERM"));
  process.on("SIGINT", () => shutdown("SIGINT"));
}

main().catch((err) => {
  process.stderr.write(`flotilla-agent: ${err instanceof DomainError || err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
