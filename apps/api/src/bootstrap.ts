import "reflect-metadata";
import { ConsoleLogger, type INestApplicationContext, type LogLevel } from "@nestjs/common";
import { NestFactory } from "@nestjs/core";
import { FastifyAdapter, type NestFastifyApplication } from "@nestjs/platform-fastify";
import { appModule } from "./app.module";
import type { AppConfig } from "./config/config";
import { setupOpenApi } from "./openapi";
import { isIP } from "node:net";
import { installAuditLog } from "./auth/audit";
import { LISTEN_BACKLOG } from "./common/listen-backlog";
import { installServerTiming } from "./common/server-timing";
import { MachineHost } from "./machines/machine-host";
import { MACHINES_CONFIG, type MachinesConfig } from "./machines/machines-config";
import { EventsService } from "./events/events.service";
import { TokensService } from "./tokens/tokens.service";
import { relayTarget, startAgentListeners } from "./agent-listener/agent-listener";
import { ReplicaUrls } from "./health/replica-urls";

const LEVELS: LogLevel[] = ["fatal", "error", "warn", "log", "debug", "verbose"];

export function jsonLogger(level: AppConfig["logLevel"]): ConsoleLogger {
  return new ConsoleLogger({ json: true, colors: false, logLevels: LEVELS.slice(0, LEVELS.indexOf(level) + 1) });
}

export interface Running {
  app: INestApplicationContext;
  /** The base URL of the HTTP API, when this role serves one. */
  url?: string;
  close(): Promise<void>;
}

/**
 * With FLOTILLA_AGENT_API_URL on https, the agents' listener speaks TLS with a server certificate
 * from the Flotilla CA (which every agent has) for the listen addresses and the URLs' hosts.
 */
async function agentListenerTls(app: INestApplicationContext, config: AppConfig): Promise<{ key: string; cert: string } | undefined> {
  const urls = app.get<MachinesConfig>(MACHINES_CONFIG).agentApiUrls;
  if (!urls.some((u) => u.startsWith("https://"))) return undefined;
  // Every replica's host: the operator may give all replicas one env file, and a name this
  // listener does not answer to costs nothing.
  const hosts = [...config.agentListen.map((a) => a.host), ...urls.map((u) => new URL(u).hostname.replace(/^\[(.*)\]$/, "$1"))];
  const ips = [...new Set(hosts.filter((h) => isIP(h) && h !== "0.0.0.0" && h !== "::"))];
  const dnsNames = [...new Set(hosts.filter((h) => !isIP(h)))];
  return (await app.get(MachineHost).authority()).issueServer({ commonName: "flotilla-api", ips, dnsNames });
}

/** Starts the control plane in the configured role. */
export async function start(config: AppConfig, opts: { logger?: ConsoleLogger | false } = {}): Promise<Running> {
  const logger = opts.logger ?? jsonLogger(config.logLevel);
  const module = appModule(config);
  if (config.role === "worker") {
    const app = await NestFactory.createApplicationContext(module, { logger, abortOnError: false });
    return { app, close: () => app.close() };
  }
  const adapter = new FastifyAdapter({ bodyLimit: 1024 * 1024, forceCloseConnections: "idle" });
  const app = await NestFactory.create<NestFastifyApplication>(module, adapter, { logger, abortOnError: false });
  setupOpenApi(app);
  // A console served by one replica keeps working through another when its own dies: the other
  // replicas' origins (FLOTILLA_PUBLIC_URLS, and the replicas installed on manager machines, read
  // as they come and go) may call this one from a browser. The token still travels in the
  // Authorization header only; no cookie is involved, so no credentials mode.
  const replicas = app.get(ReplicaUrls);
  app.enableCors({
    origin: (origin: string | undefined, cb: (err: Error | null, allow: boolean) => void) =>
      cb(null, !!origin && replicas.origins().includes(origin)),
    methods: ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"],
    allowedHeaders: ["authorization", "content-type", "accept", "if-none-match"],
    exposedHeaders: ["etag"],
    maxAge: 600,
  });
  installServerTiming(adapter.getInstance());
  installAuditLog(adapter.getInstance(), app.get(EventsService));
  await app.listen({ port: config.port, host: config.host, backlog: LISTEN_BACKLOG });
  const address = app.getHttpServer().address();
  const port = typeof address === "object" && address ? address.port : config.port;
  const url = `http://${config.host.includes(":") ? `[${config.host}]` : config.host}:${port}`;
  await app.get(TokensService).bootstrapAdmin(url);
  const agentListeners = config.agentListen.length
    ? startAgentListeners(config.agentListen, relayTarget(config.host, port), { tls: await agentListenerTls(app, config) })
    : undefined;
  // Order matters: Nest alone would close Postgres and Redis before draining HTTP. Stop relaying
  // agents' connections, end the event streams (they never finish by themselves), let in-flight
  // requests finish, then stop workers (BullMQ waits for running jobs) and close Postgres and Redis.
  const close = async () => {
    await agentListeners?.close();
    app.get(EventsService).endStreams();
    await app.getHttpAdapter().getInstance().close();
    await app.close();
  };
  return { app, url, close };
}
