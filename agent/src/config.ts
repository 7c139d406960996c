/**
 * The agent's configuration: command-line flags with environment fallbacks, checked before
 * anything is started so a typo fails fast with a message instead of half a daemon.
 */
import { isAbsolute, join, resolve } from "node:path";
import { InvalidError, parseRegistryMirror } from "@flotilla/core";

/** Where and how the agent runs; what startAgent() takes. */
export interface AgentOptions {
  /** Directory owned by the agent: images/, containers/, volumes/, network/. */
  root: string;
  /** Unix socket path; null for none (TLS only). */
  socket: string | null;
  /** TCP listener with mutual TLS; null for none. */
  tls: TlsOptions | null;
  /** Registries reached over plain http (`host:port`, `host`, or an IPv4 CIDR). */
  insecureRegistries: string[];
  /** Docker Hub mirrors (http(s)://host[:port]), tried in order before Docker Hub. */
  registryMirrors: string[];
  /** Subnet of the bridge network (passed to the network module). */
  subnet?: string;
  /** Name of the host bridge (passed to the network module). */
  bridge?: string;
  /** Prefix of the network module's iptables chains (several agents on one host need their own). */
  chainPrefix?: string;
  /** The flotilla-shim binary. */
  shimPath: string;
  /** Where user networks created without --subnet take theirs (default Docker's pools). */
  addressPools?: Array<{ base: string; size: number }>;
  /** Host paths containers may not bind-mount, nor any path inside or above them. */
  denyBinds: string[];
  /** Largest `docker build` context accepted, in bytes. */
  buildContextLimit?: number;
}

/** Default --build-context-limit: 1 GiB. */
export const DEFAULT_BUILD_CONTEXT_LIMIT = 1 << 30;

export interface TlsOptions {
  host: string;
  port: number;
  /** PEM file paths. The CA signs the client certificates we accept. */
  caCert: string;
  cert: string;
  key: string;
  /** The client certificates accepted beyond the CA's signature (client-allow.ts); none: any the CA signed. */
  clientsFile?: string;
}

export const DEFAULT_ROOT = "/var/lib/flotilla-agent";
export const DEFAULT_SOCKET = "/run/flotilla-agent.sock";
export const DEFAULT_TLS_PORT = 2376;
/** Beside the sources and the build alike: agent/shim/build/flotilla-shim. */
export const DEFAULT_SHIM = join(__dirname, "..", "shim", "build", "flotilla-shim");

export const HELP = `Usage: flotilla-agent [options]

Runs the Flotilla host agent: a Docker Engine API (v1.41 subset) on a unix socket and, with
certificates, on TCP with mutual TLS.

Options (environment variable in brackets):
  --root DIR                 state directory [FLOTILLA_AGENT_ROOT] (default ${DEFAULT_ROOT})
  --socket PATH              unix socket, mode 0660 [FLOTILLA_AGENT_SOCKET] (default ${DEFAULT_SOCKET});
                             "none" to disable
  --tls-listen HOST:PORT     TCP listener with mutual TLS [FLOTILLA_AGENT_TLS_LISTEN]
                             (default 0.0.0.0:${DEFAULT_TLS_PORT} when certificates are given)
  --tlscacert FILE           CA that signs client certificates [FLOTILLA_AGENT_TLSCACERT]
  --tlscert FILE             server certificate [FLOTILLA_AGENT_TLSCERT]
  --tlskey FILE              server key [FLOTILLA_AGENT_TLSKEY]
  --tlsclients FILE          accept only the client certificates listed there ("sha256 <fingerprint>"
                             or "cn <name>" lines; re-read when it changes) [FLOTILLA_AGENT_TLSCLIENTS]
  --insecure-registry HOST   registry reached over http; repeatable
                             [FLOTILLA_AGENT_INSECURE_REGISTRIES, comma-separated]
  --registry-mirror URL      Docker Hub mirror, http(s)://host[:port], tried before Docker Hub;
                             repeatable [FLOTILLA_AGENT_REGISTRY_MIRRORS, comma-separated]
  --subnet CIDR              bridge network subnet [FLOTILLA_AGENT_SUBNET]
  --bridge NAME              bridge interface name [FLOTILLA_AGENT_BRIDGE]
  --chain-prefix NAME        iptables chain prefix, default FLOTILLA [FLOTILLA_AGENT_CHAIN_PREFIX]
  --address-pool base=CIDR,size=N
                             subnets for user networks made without --subnet; repeatable
                             [FLOTILLA_AGENT_ADDRESS_POOLS, ';'-separated]
                             (default 172.17.0.0/12 in /16s, then 192.168.0.0/16 in /20s)
  --shim PATH                flotilla-shim binary [FLOTILLA_SHIM_BIN]
  --deny-bind PATH           refuse bind mounts of PATH, inside it or above it (a machine that
                             shares the control plane's host); repeatable
                             [FLOTILLA_AGENT_DENY_BINDS, colon-separated]
  --build-context-limit SIZE largest docker build context, bytes or with k/m/g (binary)
                             [FLOTILLA_AGENT_BUILD_CONTEXT_LIMIT] (default 1g)
  -h, --help                 this text

Reporting to a control plane (environment only, written by provisioning): FLOTILLA_API_URL,
FLOTILLA_JOIN_TOKEN or FLOTILLA_API_TOKEN, FLOTILLA_ENGINE_URL, FLOTILLA_MACHINE_NAME,
FLOTILLA_NODE_LABELS; FLOTILLA_INGRESS=auto|kernel|proxy: how published ingress ports are served
(auto, the default: iptables DNAT when the agent runs as root with a working iptables, else the
userland proxy).
`;

const FLAGS: Record<string, string> = {
  "--root": "FLOTILLA_AGENT_ROOT",
  "--socket": "FLOTILLA_AGENT_SOCKET",
  "--tls-listen": "FLOTILLA_AGENT_TLS_LISTEN",
  "--tlscacert": "FLOTILLA_AGENT_TLSCACERT",
  "--tlscert": "FLOTILLA_AGENT_TLSCERT",
  "--tlskey": "FLOTILLA_AGENT_TLSKEY",
  "--tlsclients": "FLOTILLA_AGENT_TLSCLIENTS",
  "--insecure-registry": "FLOTILLA_AGENT_INSECURE_REGISTRIES",
  "--registry-mirror": "FLOTILLA_AGENT_REGISTRY_MIRRORS",
  "--subnet": "FLOTILLA_AGENT_SUBNET",
  "--bridge": "FLOTILLA_AGENT_BRIDGE",
  "--chain-prefix": "FLOTILLA_AGENT_CHAIN_PREFIX",
  "--address-pool": "FLOTILLA_AGENT_ADDRESS_POOLS",
  "--shim": "FLOTILLA_SHIM_BIN",
  "--deny-bind": "FLOTILLA_AGENT_DENY_BINDS",
  "--build-context-limit": "FLOTILLA_AGENT_BUILD_CONTEXT_LIMIT",
};

/** `512m`, `2g`, `1048576` → bytes (binary units, as docker's --memory). */
export function parseSize(value: string, field: string): number {
  const m = /^(\d+)([kmgt]?)b?$/i.exec(value.trim());
  if (!m) throw new InvalidError(`${field}: expected a size such as 512m or 2g, got "${value}"`, { field });
  return Number(m[1]) * 1024 ** " kmgt".indexOf((m[2] || " ").toLowerCase());
}

/** `HOST:PORT`, `[v6]:PORT`, `:PORT` or `PORT`. */
export function parseListen(value: string, field = "--tls-listen"): { host: string; port: number } {
  const v = value.trim();
  let host = "0.0.0.0";
  let portText = v;
  const v6 = /^\[([^\]]+)\]:(\d+)$/.exec(v);
  if (v6) [host, portText] = [v6[1]!, v6[2]!];
  else if (v.includes(":")) [host, portText] = [v.slice(0, v.lastIndexOf(":")) || host, v.slice(v.lastIndexOf(":") + 1)];
  const port = /^\d+$/.test(portText) ? Number(portText) : NaN;
  if (!(port >= 0 && port <= 65535)) throw new InvalidError(`${field}: expected HOST:PORT, got "${value}"`, { field });
  return { host, port };
}

/** `base=198.18.0.0/16,size=24` → a pool; InvalidError naming --address-pool otherwise. */
export function parseAddressPool(value: string): { base: string; size: number } {
  const kv = new Map(value.split(",").map((p) => p.trim().split("=", 2) as [string, string]));
  const base = kv.get("base");
  const size = Number(kv.get("size"));
  if (!base || !/^\d+\.\d+\.\d+\.\d+\/\d+$/.test(base) || !Number.isInteger(size) || size < 8 || size > 30 || kv.size !== 2) {
    throw new InvalidError(`--address-pool: expected base=A.B.C.D/LEN,size=N, got "${value}"`, { field: "--address-pool" });
  }
  return { base, size };
}

/** Parses argv (without node and script) and env. Returns null when --help was asked. */
export function parseArgs(argv: readonly string[], env: NodeJS.ProcessEnv = process.env): AgentOptions | null {
  const given = new Map<string, string[]>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === "-h" || arg === "--help") return null;
    const eq = arg.indexOf("=");
    const flag = eq > 0 ? arg.slice(0, eq) : arg;
    if (!(flag in FLAGS)) throw new InvalidError(`unknown option ${arg} (see --help)`, { field: arg });
    const value = eq > 0 ? arg.slice(eq + 1) : argv[++i];
    if (value === undefined) throw new InvalidError(`${flag} needs a value`, { field: flag });
    given.set(flag, [...(given.get(flag) ?? []), value]);
  }
  const get = (flag: string): string | undefined => given.get(flag)?.at(-1) ?? (env[FLAGS[flag]!] || undefined);

  const root = resolve(get("--root") ?? DEFAULT_ROOT);
  const socketArg = get("--socket") ?? DEFAULT_SOCKET;
  const socket = socketArg === "none" || socketArg === "" ? null : resolve(socketArg);
  const insecureRegistries =
    given.get("--insecure-registry") ??
    (env.FLOTILLA_AGENT_INSECURE_REGISTRIES ?? "")
      .split(",")
      .map((s) => s.trim())
      .filter(Boolean);
  const registryMirrors =
    given.get("--registry-mirror") ??
    (env.FLOTILLA_AGENT_REGISTRY_MIRRORS ?? "")
      .split(",")
      .map((s) => s.trim())
      .filter(Boolean);
  for (const m of registryMirrors) {
    try {
      parseRegistryMirror(m);
    } catch (e) {
      throw new InvalidError(`--registry-mirror: ${(e as Error).message}`, { field: "--registry-mirror" });
    }
  }

  const [caCert, cert, key] = [get("--tlscacert"), get("--tlscert"), get("--tlskey")];
  const listen = get("--tls-listen");
  let tls: TlsOptions | null = null;
  if (caCert || cert || key || listen) {
    if (!caCert || !cert || !key) {
      throw new InvalidError("TLS needs all of --tlscacert, --tlscert and --tlskey (clients must present a certificate)", {
        field: "--tlscacert",
      });
    }
    const clientsFile = get("--tlsclients");
    tls = {
      ...parseListen(listen ?? `0.0.0.0:${DEFAULT_TLS_PORT}`),
      caCert,
      cert,
      key,
      ...(clientsFile ? { clientsFile: resolve(clientsFile) } : {}),
    };
  }
  if (!socket && !tls) throw new InvalidError("nothing to listen on: give --socket or TLS certificates", { field: "--socket" });

  const shimPath = get("--shim") ?? DEFAULT_SHIM;
  if (!isAbsolute(shimPath)) throw new InvalidError(`--shim must be an absolute path: ${shimPath}`, { field: "--shim" });
  const denyBinds = given.get("--deny-bind") ?? (env.FLOTILLA_AGENT_DENY_BINDS ?? "").split(":").filter(Boolean);
  for (const p of denyBinds)
    if (!isAbsolute(p)) throw new InvalidError(`--deny-bind must be an absolute path: ${p}`, { field: "--deny-bind" });
  const limit = get("--build-context-limit");
  const buildContextLimit = limit === undefined ? DEFAULT_BUILD_CONTEXT_LIMIT : parseSize(limit, "--build-context-limit");
  const pools = (
    given.get("--address-pool") ??
    (env.FLOTILLA_AGENT_ADDRESS_POOLS ?? "")
      .split(";")
      .map((s) => s.trim())
      .filter(Boolean)
  ).map(parseAddressPool);
  return {
    root,
    socket,
    tls,
    insecureRegistries,
    registryMirrors,
    subnet: get("--subnet"),
    bridge: get("--bridge"),
    chainPrefix: get("--chain-prefix"),
    shimPath,
    denyBinds,
    buildContextLimit,
    ...(pools.length ? { addressPools: pools } : {}),
  };
}
