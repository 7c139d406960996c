/**
 * Published ports: validation of what the user asked for (pure), clash rules, and the sockets
 * that hold each published port. Published ports are DNAT rules, not sockets, so the kernel
 * cannot refuse a second publication for us; this module's held sockets make it refuse.
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

/** A host port held by a socket of ours, so no other process (or agent) can bind it. */
export interface HeldPort {
  port: number;
  release(): Promise<void>;
}

/** What binding a host port told us: held (with the port bound), or why not. */
export type HoldResult = ({ free: true } & HeldPort) | { free: false; code: string };

/**
 * Binds hostIp:port (0 = let the kernel choose) and keeps it bound until release(). Published
 * ports are DNAT rules, which the kernel does not know as taken: without this socket, a host
 * process could bind the port and the kernel could hand it out as an ephemeral port, and each
 * would be shadowed by our rule. Docker holds such a socket too when its userland proxy is off.
 * EADDRINUSE means a host process already owns it. `exclusive` keeps Node's cluster module from
 * sharing a handle. Connections never reach the socket while our DNAT rule is in place; any that
 * do (an address the rule does not cover) are closed at once. The handle does not keep the
 * process alive.
 */
export function holdHostPort(hostIp: string, port: number, protocol: Protocol): Promise<HoldResult> {
  return new Promise((resolve) => {
    if (protocol === "udp") {
      const sock = createSocket({ type: "udp4" });
      sock.once("error", (e: NodeJS.ErrnoException) => {
        sock.close();
        resolve({ free: false, code: e.code ?? "EUNKNOWN" });
      });
      sock.bind({ address: hostIp, port, exclusive: true }, () => {
        sock.removeAllListeners("error");
        sock.on("error", () => undefined);
        sock.unref();
        const release = () => new Promise<void>((done) => sock.close(() => done()));
        resolve({ free: true, port: sock.address().port, release: once(release) });
      });
      return;
    }
    const server = createServer((socket) => socket.destroy());
    server.once("error", (e: NodeJS.ErrnoException) => resolve({ free: false, code: e.code ?? "EUNKNOWN" }));
    server.listen({ host: hostIp, port, exclusive: true }, () => {
      server.removeAllListeners("error");
      server.on("error", () => undefined);
      server.unref();
      const addr = server.address();
      const bound = typeof addr === "object" && addr ? addr.port : port;
      const release = () => new Promise<void>((done) => server.close(() => done()));
      resolve({ free: true, port: bound, release: once(release) });
    });
  });
}

function once(fn: () => Promise<void>): () => Promise<void> {
  let done: Promise<void> | undefined;
  return () => (done ??= fn());
}

/**
 * Releases every port in `held`, read when called (reservePorts adds to the list until it returns).
 * Each port's release() runs once, so calling this twice is harmless.
 */
function releaseAll(held: readonly HeldPort[]): () => Promise<void> {
  return async () => {
    await Promise.all(held.map((h) => h.release()));
  };
}

/** Ports resolved for one container, each held by a socket until release(). */
export interface PortReservation {
  ports: PublishedPort[];
  release(): Promise<void>;
}

/**
 * Resolves the host port of each request against the ports already published (`taken`) and the
 * host's sockets, and holds each one: explicit ports must be free on both, port 0 becomes a free
 * ephemeral port the kernel proposes (retried when it is one we published). Throws
 * PortAllocatedError on a clash, InvalidError when hostIp is not an address of this host; on any
 * error nothing stays held.
 */
export async function reservePorts(requests: readonly PublishedPort[], taken: readonly PublishedPort[]): Promise<PortReservation> {
  const out: PublishedPort[] = [];
  const held: HeldPort[] = [];
  const release = releaseAll(held);
  const clashes = (p: Omit<PublishedPort, "containerPort">) => [...taken, ...out].some((t) => portsClash(t, p));
  try {
    for (const req of requests) {
      if (req.hostPort !== 0) {
        if (clashes(req)) throw new PortAllocatedError(req.hostIp, req.hostPort, req.protocol);
        const hold = await holdHostPort(req.hostIp, req.hostPort, req.protocol);
        if (!hold.free) throw holdError(req, hold.code);
        held.push(hold);
        out.push(req);
        continue;
      }
      let picked: HeldPort | undefined;
      for (let attempt = 0; attempt < 20 && picked === undefined; attempt++) {
        const hold = await holdHostPort(req.hostIp, 0, req.protocol);
        if (!hold.free) throw holdError(req, hold.code);
        if (clashes({ ...req, hostPort: hold.port })) await hold.release();
        else picked = hold;
      }
      if (picked === undefined) {
        throw new ConflictError(`Bind for ${req.hostIp}:0 failed: no free ephemeral ${req.protocol} port`, { hostIp: req.hostIp });
      }
      held.push(picked);
      out.push({ ...req, hostPort: picked.port });
    }
  } catch (e) {
    await release();
    throw e;
  }
  return { ports: out, release };
}

/**
 * Holds ports published before (an adopted container's, after an agent restart). Ports some
 * other process bound while no agent held them are left out and named in `lost`: their DNAT
 * rule still wins for new connections, but that process is shadowed.
 */
export async function rehold(ports: readonly PublishedPort[]): Promise<{ reservation: PortReservation; lost: string[] }> {
  const held: HeldPort[] = [];
  const lost: string[] = [];
  for (const p of ports) {
    const hold = await holdHostPort(p.hostIp, p.hostPort, p.protocol);
    if (hold.free) held.push(hold);
    else lost.push(`${p.hostIp}:${p.hostPort}/${p.protocol} (${hold.code})`);
  }
  return { reservation: { ports: [...ports], release: releaseAll(held) }, lost };
}

function holdError(req: PublishedPort, code: string): Error {
  if (code === "EADDRINUSE") return new PortAllocatedError(req.hostIp, req.hostPort, req.protocol);
  if (code === "EADDRNOTAVAIL") {
    return new InvalidError(`Bind for ${req.hostIp}:${req.hostPort} failed: cannot assign requested address`, { field: "hostIp" });
  }
  return new Error(`ports: bind ${req.protocol} ${req.hostIp}:${req.hostPort}: ${code}`);
}
