/** _ping, version, info and the event stream. */
import { InvalidError } from "@flotilla/core";
import type { ContainerService } from "../containers/container-service";
import { EVENT_FILTER_KEYS, eventMatches, parseEventTime, type DockerEvent, type EventBus } from "../events/event-bus";
import type { ImageStore } from "../images";
import type { HostFacts } from "../system/host-info";
import { checkFilterKeys, parseFilters } from "./http-util";
import { API_VERSION, MIN_API_VERSION, type Router } from "./router";

export const AGENT_VERSION = "0.1.0";

export interface SystemRouteDeps {
  root: string;
  id: string;
  facts: HostFacts;
  containers: ContainerService;
  images: ImageStore;
  events: EventBus;
  insecureRegistries: readonly string[];
  /** Docker Hub mirrors, shown by `docker info` as "Registry Mirrors". */
  registryMirrors: readonly string[];
  bridgeNetworking: boolean;
  /** Streams to end when the agent closes. */
  streams: Set<{ end(): void }>;
}

export function registerSystemRoutes(router: Router, deps: SystemRouteDeps): void {
  const { facts } = deps;

  router.add("GET", "/_ping", ({ req, res }) => {
    res.writeHead(200, {
      "API-Version": API_VERSION,
      OSType: "linux",
      "Docker-Experimental": "false",
      "Cache-Control": "no-cache, no-store, must-revalidate",
      Pragma: "no-cache",
      "Content-Type": "text/plain; charset=utf-8",
      "Content-Length": req.method === "HEAD" ? 0 : 2,
    });
    res.end(req.method === "HEAD" ? undefined : "OK");
  });

  router.add("GET", "/version", ({ res }) => {
    const details = {
      ApiVersion: API_VERSION,
      MinAPIVersion: MIN_API_VERSION,
      Arch: facts.goArch,
      Os: "linux",
      KernelVersion: facts.kernelVersion,
      GitCommit: "",
      GoVersion: `node${process.versions.node}`,
      BuildTime: "",
    };
    sendJsonNoCache(res, {
      Platform: { Name: "Flotilla Agent" },
      Components: [{ Name: "Engine", Version: AGENT_VERSION, Details: details }],
      Version: AGENT_VERSION,
      ...details,
    });
  });

  router.add("GET", "/info", async ({ res }) => {
    const all = deps.containers.all();
    const count = (s: string) => all.filter((c) => c.state.status === s).length;
    sendJsonNoCache(res, {
      ID: deps.id,
      Containers: all.length,
      ContainersRunning: count("running"),
      ContainersPaused: 0,
      ContainersStopped: all.length - count("running"),
      Images: (await deps.images.list()).length,
      Driver: "overlay2",
      DriverStatus: [["Backing Filesystem", "overlayfs"]],
      Plugins: {
        Volume: ["local"],
        Network: deps.bridgeNetworking ? ["bridge", "host", "null"] : ["host", "null"],
        Authorization: null,
        Log: ["json-file"],
      },
      MemoryLimit: true,
      SwapLimit: true,
      CpuCfsPeriod: true,
      CpuCfsQuota: true,
      CPUShares: true,
      CPUSet: false,
      PidsLimit: true,
      IPv4Forwarding: true,
      Debug: false,
      NFd: 0,
      NGoroutines: 0,
      SystemTime: new Date().toISOString(),
      LoggingDriver: "json-file",
      CgroupDriver: "cgroupfs",
      CgroupVersion: facts.cgroupVersion,
      NEventsListener: deps.streams.size,
      KernelVersion: facts.kernelVersion,
      OperatingSystem: facts.operatingSystem,
      OSVersion: "",
      OSType: "linux",
      Architecture: facts.architecture,
      IndexServerAddress: "https://index.docker.io/v1/",
      RegistryConfig: {
        InsecureRegistryCIDRs: [],
        IndexConfigs: {},
        // docker info prints these under "Registry Mirrors", with the trailing slash Docker adds.
        Mirrors: deps.registryMirrors.map((m) => (m.endsWith("/") ? m : `${m}/`)),
        AllowNondistributableArtifactsCIDRs: [],
        AllowNondistributableArtifactsHostnames: [],
      },
      NCPU: facts.ncpu,
      MemTotal: facts.memTotal,
      DockerRootDir: deps.root,
      Name: facts.name,
      Labels: [],
      ExperimentalBuild: false,
      ServerVersion: AGENT_VERSION,
      Runtimes: { "flotilla-shim": { path: "flotilla-shim" } },
      DefaultRuntime: "flotilla-shim",
      Swarm: { NodeID: "", NodeAddr: "", LocalNodeState: "inactive", ControlAvailable: false, Error: "", RemoteManagers: null },
      LiveRestoreEnabled: true,
      Isolation: "",
      InitBinary: "",
      SecurityOptions: ["name=seccomp,profile=builtin", "name=no-new-privileges"],
      Warnings: deps.insecureRegistries.map((r) => `WARNING: insecure registry ${r}: images are pulled over plain http`),
    });
  });

  router.add("GET", "/events", ({ res, query }) => {
    const filters = parseFilters(query);
    checkFilterKeys(filters, EVENT_FILTER_KEYS);
    const time = (name: string) => {
      const v = query.get(name);
      if (!v) return undefined;
      const t = parseEventTime(v);
      if (!Number.isFinite(t)) throw new InvalidError(`invalid value for ${name}: ${v}`, { field: name });
      return t;
    };
    const since = time("since");
    const until = time("until");
    res.writeHead(200, { "Content-Type": "application/json" });
    res.flushHeaders();
    const send = (e: DockerEvent) => {
      if (eventMatches(e, filters)) res.write(JSON.stringify(e) + "\n");
    };
    if (since !== undefined) for (const e of deps.events.history(since, until)) send(e);
    const nowNano = Date.now() * 1e6;
    if (until !== undefined && until <= nowNano) return void res.end();
    const stream = { end: () => res.end() };
    deps.streams.add(stream);
    const stop = deps.events.subscribe((e) => {
      if (until !== undefined && e.timeNano > until) return;
      send(e);
    });
    const timer = until !== undefined ? setTimeout(() => res.end(), (until - nowNano) / 1e6) : undefined;
    const cleanup = () => {
      stop();
      clearTimeout(timer);
      deps.streams.delete(stream);
    };
    // "close" on the response: the client went away (or we ended the stream).
    res.on("close", cleanup);
  });
}

function sendJsonNoCache(res: import("node:http").ServerResponse, body: unknown): void {
  const data = Buffer.from(JSON.stringify(body) + "\n");
  res.writeHead(200, {
    "Content-Type": "application/json",
    "Content-Length": data.length,
    "API-Version": API_VERSION,
    OSType: "linux",
    "Docker-Experimental": "false",
  });
  res.end(data);
}
