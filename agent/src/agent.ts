/**
 * Assembles the agent: image store, volumes, containers, network, events, and the Engine API on
 * a unix socket and/or TCP with mutual TLS. Start order: stores first, then containers (which
 * re-adopt running ones and restore their ports), listeners last, so no request sees a
 * half-loaded agent. Closing stops listening but leaves containers running under their shims.
 */
import { randomUUID } from "node:crypto";
import * as fs from "node:fs";
import http from "node:http";
import https from "node:https";
import net from "node:net";
import type { AddressInfo } from "node:net";
import { dirname, join, resolve } from "node:path";
import type { Duplex } from "node:stream";
import { upgradeHandler } from "./api/attach";
import { registerBuildRoutes } from "./api/build.routes";
import { ClientAllowFile, ClientGate } from "./api/client-allow";
import { registerContainerRoutes } from "./api/containers.routes";
import { registerLaunchRoutes } from "./api/launch.routes";
import { registerImageTransferRoutes } from "./api/image-transfer.routes";
import { registerContainerOpsRoutes } from "./api/container-ops.routes";
import { registerArchiveRoutes } from "./api/archive.routes";
import { registerExecRoutes } from "./api/exec.routes";
import { registerImageRoutes } from "./api/images.routes";
import { registerNetworkRoutes } from "./api/networks.routes";
import { Router } from "./api/router";
import { registerSystemRoutes } from "./api/system.routes";
import { registerVolumeRoutes } from "./api/volumes.routes";
import { Builder } from "./build/builder";
import { DEFAULT_BUILD_CONTEXT_LIMIT, DEFAULT_SHIM, type TlsOptions } from "./config";
import { ContainerService } from "./containers/container-service";
import { ExecService } from "./exec/exec-service";
import type { ExecRetention } from "./exec/exec-prune";
import { HealthMonitor } from "./health/health-monitor";
import { loadBridgeNetwork, type NetworkPort } from "./containers/network-port";
import { EventBus } from "./events/event-bus";
import { ImageStore } from "./images";
import { hostFacts } from "./system/host-info";
import { VolumeStore } from "./volumes/volume-store";

/** What startAgent takes: AgentOptions with defaults, plus hooks for tests and embedding. */
export interface StartAgentOptions {
  root: string;
  /** Unix socket path; omitted or null: none. */
  socket?: string | null;
  tls?: TlsOptions | null;
  insecureRegistries?: readonly string[];
  /** Docker Hub mirrors (URLs), tried in order before Docker Hub. */
  registryMirrors?: readonly string[];
  subnet?: string;
  bridge?: string;
  chainPrefix?: string;
  /** Subnets for user networks made without one. */
  addressPools?: Array<{ base: string; size: number }>;
  shimPath?: string;
  /** Host paths containers may not bind-mount (see --deny-bind). */
  denyBinds?: readonly string[];
  /** Largest `docker build` context accepted, in bytes (default 1 GiB). */
  buildContextLimit?: number;
  /** How long finished exec records stay and how many a container keeps (exec-prune.ts). */
  execRetention?: Partial<ExecRetention>;
  /**
   * Bridge networking: a NetworkPort, null for none, or "auto" (default) to load
   * agent/src/network when it is there.
   */
  network?: NetworkPort | null | "auto";
  /** Diagnostics (stderr in the CLI). */
  log?: (msg: string) => void;
}

/** A running agent. */
export interface AgentHandle {
  /** Stops listening and watching; containers keep running (a new agent re-adopts them). */
  close(): Promise<void>;
  socketPath: string | null;
  /** The TLS listener's port (useful with port 0), or null. */
  tlsPort: number | null;
  /** The network module in use, or null when bridge containers get loopback only. */
  network: NetworkPort | null;
  containers: ContainerService;
  execs: ExecService;
  events: EventBus;
}

function engineId(root: string): string {
  const file = join(root, "engine-id");
  try {
    return fs.readFileSync(file, "utf8").trim();
  } catch {
    const id = randomUUID();
    fs.writeFileSync(file, `${id}\n`);
    return id;
  }
}

/** Refuses to take over a socket another process still serves; removes a stale one. */
async function claimSocket(path: string): Promise<void> {
  if (!fs.existsSync(path)) return;
  const alive = await new Promise<boolean>((resolve) => {
    const s = net.connect(path, () => {
      s.destroy();
      resolve(true);
    });
    s.on("error", () => resolve(false));
  });
  if (alive) throw new Error(`another process is listening on ${path}`);
  fs.rmSync(path, { force: true });
}

function listen(server: net.Server, ...args: unknown[]): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    (server.listen as (...a: unknown[]) => void)(...args, () => {
      server.off("error", reject);
      resolve();
    });
  });
}

/** Starts an agent in this process. */
export async function startAgent(options: StartAgentOptions): Promise<AgentHandle> {
  const log = options.log ?? (() => {});
  const root = options.root;
  fs.mkdirSync(root, { recursive: true, mode: 0o700 });
  const events = new EventBus();
  const volumes = new VolumeStore(root);
  await volumes.init();
  // The in-use check is bound late: containers are created after the store.
  const late: { containers?: ContainerService } = {};
  const images = await ImageStore.open({
    root: join(root, "images"),
    insecureRegistries: [...(options.insecureRegistries ?? [])],
    registryMirrors: [...(options.registryMirrors ?? [])],
    isInUse: (id) => late.containers?.store.usesImage(id) ?? false,
    log,
  });
  let network: NetworkPort | null;
  if (options.network === undefined || options.network === "auto")
    network = await loadBridgeNetwork(
      { root, subnet: options.subnet, bridge: options.bridge, chainPrefix: options.chainPrefix, addressPools: options.addressPools },
      log,
    );
  else {
    network = options.network;
    await network?.init();
  }
  // On a machine that shares the control plane's host, the agent's own keys are off limits too.
  const denyBinds = options.denyBinds?.length
    ? [
        ...options.denyBinds,
        ...(options.tls ? [options.tls.key, options.tls.cert, options.tls.caCert].map((f) => dirname(resolve(f))) : []),
      ]
    : [];
  const containers = new ContainerService({
    root,
    images,
    volumes,
    events,
    network,
    shimPath: options.shimPath ?? DEFAULT_SHIM,
    denyBinds,
    log,
  });
  late.containers = containers;
  await containers.init();

  const streams = new Set<{ end(): void }>();
  const router = new Router();
  registerSystemRoutes(router, {
    root,
    id: engineId(root),
    facts: hostFacts(),
    containers,
    images,
    events,
    insecureRegistries: options.insecureRegistries ?? [],
    registryMirrors: options.registryMirrors ?? [],
    bridgeNetworking: !!network,
    streams,
  });
  registerImageRoutes(router, { images, containers, events });
  registerContainerRoutes(router, { containers, images, volumes });
  registerLaunchRoutes(router, { containers });
  registerVolumeRoutes(router, { volumes, containers, events });
  registerNetworkRoutes(router, { network, containers, events, started: new Date().toISOString() });
  const builder = new Builder({
    images,
    shimPath: options.shimPath ?? DEFAULT_SHIM,
    contextLimit: options.buildContextLimit ?? DEFAULT_BUILD_CONTEXT_LIMIT,
  });
  registerBuildRoutes(router, { builder, events });
  registerImageTransferRoutes(router, { images, containers, volumes, events });
  const execs = new ExecService({
    containers,
    images,
    events,
    shimPath: options.shimPath ?? DEFAULT_SHIM,
    retention: options.execRetention,
  });
  registerExecRoutes(router, { containers, execs });
  registerContainerOpsRoutes(router, { containers, images, events });
  registerArchiveRoutes(router, { containers, images, events });
  const health = new HealthMonitor(containers, execs, events, log);

  const hijacked = new Set<Duplex>();
  const onUpgrade = upgradeHandler(containers, execs);
  const servers: http.Server[] = [];
  const setup = (server: http.Server, gate?: ClientGate) => {
    server.on("upgrade", (req, socket: Duplex, head: Buffer) => {
      const refused = gate?.refusal(req.socket);
      if (refused) return void socket.end(ClientGate.rawRefusal(refused));
      hijacked.add(socket);
      socket.on("close", () => hijacked.delete(socket));
      onUpgrade(req, socket, head);
    });
    // Streams (logs -f, events, wait) may be idle for long: no request or keep-alive timeout.
    server.requestTimeout = 0;
    server.headersTimeout = 60_000;
    servers.push(server);
    return server;
  };

  // router.handle answers every failure itself (sendError), so its promise never rejects.
  const onRequest = (req: http.IncomingMessage, res: http.ServerResponse): void => void router.handle(req, res);
  let socketPath: string | null = null;
  let tlsPort: number | null = null;
  try {
    if (options.socket) {
      await claimSocket(options.socket);
      const server = setup(http.createServer(onRequest));
      await listen(server, options.socket);
      fs.chmodSync(options.socket, 0o660);
      socketPath = options.socket;
    }
    if (options.tls) {
      const t = options.tls;
      // Beyond the CA's signature: only the client certificates the control plane listed.
      const gate = t.clientsFile ? new ClientGate(new ClientAllowFile(t.clientsFile), log) : undefined;
      const onTlsRequest = (req: http.IncomingMessage, res: http.ServerResponse): void => {
        const refused = gate?.refusal(req.socket);
        if (!refused) return onRequest(req, res);
        res.writeHead(403, { "Content-Type": "application/json", Connection: "close" }).end(JSON.stringify({ message: refused }));
      };
      const server = setup(
        https.createServer(
          {
            ca: fs.readFileSync(t.caCert),
            cert: fs.readFileSync(t.cert),
            key: fs.readFileSync(t.key),
            requestCert: true,
            rejectUnauthorized: true,
            minVersion: "TLSv1.2",
          },
          onTlsRequest,
        ),
        gate,
      );
      await listen(server, t.port, t.host);
      tlsPort = (server.address() as AddressInfo).port;
    }
  } catch (err) {
    for (const s of servers) s.close();
    containers.close();
    throw err;
  }

  const close = async () => {
    health.close();
    execs.close();
    containers.close();
    for (const s of streams) s.end();
    for (const s of hijacked) s.destroy();
    await Promise.all(
      servers.map(
        (s) =>
          new Promise<void>((resolve) => {
            s.close(() => resolve());
            s.closeAllConnections();
          }),
      ),
    );
    if (socketPath) fs.rmSync(socketPath, { force: true });
    await network?.close?.();
    // Layers still being unpacked after a pull: let them land rather than cut them off mid-write
    // (tmp/ would be cleaned at the next start anyway; this keeps the root quiet after close).
    await images.settle();
  };
  return { close, socketPath, tlsPort, network, containers, execs, events };
}
