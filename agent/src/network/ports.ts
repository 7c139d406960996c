/**
 * Published ports: validation of what the user asked for (pure), clash rules, and the probe that
 * asks the kernel whether a host socket already holds a port. Published ports are DNAT rules, not
 * sockets, so the kernel cannot refuse a second publication for us; this module is that check.
 */
import { createSocket } from "node:dgram";
import { createServer } from "node:net";
import { ConflictError, InvalidError, NotSupportedError } from "@flotilla/core";
import { isIpv4 } from "./ipam";

/** Transport protocols a port can be published for. */
export type Protocol = "tcp" | "udp";

/** A port the caller wants published (Docker's HostConfig.PortBindings entry). */
export interface PortRequest {
  /** Host address to listen on; empty, absent or 0.0.0.0 means every local address. */
  hostIp?: string;
  /** 1..65535, or 0 to pick a free ephemeral port. */
  hostPort: number;
  containerPort: number;
  /** Default tcp. */
  protocol?: Protocol;
}

/** A published port with everything resolved: hostIp is "0.0.0.0" for "any", hostPort ≠ 0. */
export interface PublishedPort {
  hostIp: string;
  hostPort: number;
  containerPort: number;
  protocol: Protocol;
}

/** The host address meaning "every local address", as Docker shows it. */
export const ANY_IP = "0.0.0.0";

function isPort(n: unknown, min: number): n is number {
  return typeof n === "number" && Number.isInteger(n) && n >= min && n <= 65535;
}

/**
 * Checks and normalizes port requests. Throws InvalidError naming the field
 * (`ports[1].hostPort`) for ports outside 0..65535 (container ports 1..65535), a protocol other
 * than tcp/udp, or a host address that is not IPv4; NotSupportedError for IPv6 host addresses.
 */
export function validatePorts(requests: readonly PortRequest[]): PublishedPort[] {
  if (!Array.isArray(requests)) throw new InvalidError("ports must be a list", { field: "ports" });
  return requests.map((r, i) => {
    const field = (f: string) => ({ field: `ports[${i}].${f}` });
    const protocol = r.protocol ?? "tcp";
    if (protocol !== "tcp" && protocol !== "udp") {
      throw new InvalidError(`invalid protocol ${JSON.stringify(protocol)}: must be tcp or udp`, field("protocol"));
    }
    if (!isPort(r.hostPort, 0))
      throw new InvalidError(`invalid host port ${JSON.stringify(r.hostPort)}: must be 0-65535`, field("hostPort"));
    if (!isPort(r.containerPort, 1)) {
      throw new InvalidError(`invalid container port ${JSON.stringify(r.containerPort)}: must be 1-65535`, field("containerPort"));
    }
    const hostIp = r.hostIp === undefined || r.hostIp === "" ? ANY_IP : r.hostIp;
    if (hostIp.includes(":")) throw new NotSupportedError(`IPv6 host address ${hostIp}: only IPv4 ports can be published`, field("hostIp"));
    if (!isIpv4(hostIp)) throw new InvalidError(`invalid host IP ${JSON.stringify(hostIp)}`, field("hostIp"));
    return { hostIp, hostPort: r.hostPort, containerPort: r.containerPort, protocol };
  });
}

/** Two bindings clash when protocol and port are equal and the addresses overlap (any = all). */
export function portsClash(a: Omit<PublishedPort, "containerPort">, b: Omit<PublishedPort, "containerPort">): boolean {
  return a.protocol === b.protocol && a.hostPort === b.hostPort && (a.hostIp === b.hostIp || a.hostIp === ANY_IP || b.hostIp === ANY_IP);
}

/** Docker's words for a port already in use (the CLI user recognises them). */
export class PortAllocatedError extends ConflictError {
  constructor(hostIp: string, hostPort: number, protocol: Protocol) {
    super(`Bind for ${hostIp}:${hostPort} failed: port is already allocated`, { hostIp, hostPort, protocol });
  }
}

/** What binding a host port briefly told us: free (with the port bound), or why not. */
export type ProbeResult = { free: true; port: number } | { free: false; code: string };

/**
 * Binds hostIp:port (0 = let the kernel choose) for an instant and releases it. EADDRINUSE
 * means a host process already owns it: DNAT would silently steal its traffic, so we refuse
 * as Docker's proxy would. `exclusive` keeps Node's cluster module from sharing a handle.
 */
export function probeHostPort(hostIp: string, port: number, protocol: Protocol): Promise<ProbeResult> {
  return new Promise((resolve) => {
    if (protocol === "udp") {
      const sock = createSocket({ type: "udp4" });
      sock.once("error", (e: NodeJS.ErrnoException) => {
        sock.close();
        resolve({ free: false, code: e.code ?? "EUNKNOWN" });
      });
      sock.bind({ address: hostIp, port, exclusive: true }, () => {
        const bound = sock.address().port;
        sock.close(() => resolve({ free: true, port: bound }));
      });
      return;
    }
    const server = createServer();
    server.once("error", (e: NodeJS.ErrnoException) => resolve({ free: false, code: e.code ?? "EUNKNOWN" }));
    server.listen({ host: hostIp, port, exclusive: true }, () => {
      const addr = server.address();
      const bound = typeof addr === "object" && addr ? addr.port : port;
      server.close(() => resolve({ free: true, port: bound }));
    });
  });
}

/**
 * Resolves the host port of each request against the ports already published (`taken`) and the
 * host's sockets: explicit ports must be free on both, port 0 becomes a free ephemeral port the
 * kernel proposes (retried when it is one we published). Throws PortAllocatedError on a clash,
 * InvalidError when hostIp is not an address of this host.
 */
export async function resolvePorts(requests: readonly PublishedPort[], taken: readonly PublishedPort[]): Promise<PublishedPort[]> {
  const out: PublishedPort[] = [];
  const clashes = (p: Omit<PublishedPort, "containerPort">) => [...taken, ...out].some((t) => portsClash(t, p));
  for (const req of requests) {
    if (req.hostPort !== 0) {
      if (clashes(req)) throw new PortAllocatedError(req.hostIp, req.hostPort, req.protocol);
      const probe = await probeHostPort(req.hostIp, req.hostPort, req.protocol);
      if (!probe.free) throw probeError(req, probe.code);
      out.push(req);
      continue;
    }
    let picked: number | undefined;
    for (let attempt = 0; attempt < 20 && picked === undefined; attempt++) {
      const probe = await probeHostPort(req.hostIp, 0, req.protocol);
      if (!probe.free) throw probeError(req, probe.code);
      if (!clashes({ ...req, hostPort: probe.port })) picked = probe.port;
    }
    if (picked === undefined) {
      throw new ConflictError(`Bind for ${req.hostIp}:0 failed: no free ephemeral ${req.protocol} port`, { hostIp: req.hostIp });
    }
    out.push({ ...req, hostPort: picked });
  }
  return out;
}

function probeError(req: PublishedPort, code: string): Error {
  if (code === "EADDRINUSE") return new PortAllocatedError(req.hostIp, req.hostPort, req.protocol);
  if (code === "EADDRNOTAVAIL") {
    return new InvalidError(`Bind for ${req.hostIp}:${req.hostPort} failed: cannot assign requested address`, { field: "hostIp" });
  }
  return new Error(`ports: bind ${req.protocol} ${req.hostIp}:${req.hostPort}: ${code}`);
}
