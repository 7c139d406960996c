#!/usr/bin/env node
// flotilla-api [api|worker|all]: the control plane; the role defaults to $FLOTILLA_ROLE or `all`.
import { ConfigError, loadConfig } from "./config/config";

async function main(): Promise<void> {
  const arg = process.argv[2];
  if (arg === "--help" || arg === "-h") {
    process.stdout.write(
      "usage: flotilla-api [api|worker|all]\n\n" +
        "Runs the Flotilla control plane. Roles: api (HTTP API), worker (queue consumers), all (both).\n" +
        "Environment: DATABASE_URL, REDIS_URL (required); FLOTILLA_HOST (127.0.0.1), FLOTILLA_PORT (8080),\n" +
        "FLOTILLA_ROLE (all), FLOTILLA_LOG_LEVEL (log), FLOTILLA_CONFIG_DIR (~/.config/flotilla),\n" +
        "FLOTILLA_SWEEP_INTERVAL_MS (30000), FLOTILLA_QUEUE_PREFIX (flotilla).\n",
    );
    return;
  }
  let config;
  try {
    config = loadConfig(process.env, arg);
  } catch (e) {
    if (e instanceof ConfigError) {
      process.stderr.write(`flotilla-api: ${e.message}\n`);
      process.exit(1);
    }
    throw e;
  }
  // Loaded only once the configuration is valid: a bad one fails at once, without loading the
  // whole control plane first (seconds on a busy machine).
  const { start } = await import("./bootstrap");
  const running = await start(config);
  // One line once ready, for whoever supervises the process (a worker has no health URL to poll).
  if (running.url) process.stderr.write(`flotilla-api: ${config.role} listening on ${running.url}\n`);
  else process.stderr.write("flotilla-api: worker running (queue consumers, no HTTP API)\n");
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    process.stderr.write(`flotilla-api: ${signal}: draining and shutting down\n`);
    running.close().then(
      () => process.exit(0),
      (e: Error) => {
        process.stderr.write(`flotilla-api: shutdown failed: ${e.message}\n`);
        process.exit(1);
      },
    );
  };
  process.on("SIGTERM", () => stop("SIGTERM"));
  process.on("SIGINT", () => stop("SIGINT"));
}

main().catch((e: Error) => {
  process.stderr.write(`flotilla-api: failed to start: ${e.message}\n`);
  process.exit(1);
});
