// Small IPv4 and TCP helpers shared by the drivers.
import { createServer, Socket } from "node:net";

/** A host address inside an IPv4 network, as in "192.168.99.1/24". */
export interface Cidr {
  /** The host's own address in the network (the host-only adapter's IP). */
  address: string;
  prefixLength: number;
  netmask: string;
  network: string;
  broadcast: string;
  /** Canonical "address/prefix". */
  text: string;
}

export function ipv4ToInt(ip: string): number | undefined {
  const parts = ip.split(".");
  if (parts.length !== 4) return undefined;
  let n = 0;
  for (const p of parts) {
    if (!/^\d{1,3}$/.test(p)) return undefined;
    const v = Number(p);
    if (v > 255) return undefined;
    n = n * 256 + v;
  }
  return n;
}

export function intToIpv4(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join(".");
}

function maskOf(prefix: number): number {
  return prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
}

/** Prefix length of a dotted netmask, or undefined when the mask is not contiguous. */
export function prefixOfNetmask(mask: string): number | undefined {
  const n = ipv4ToInt(mask);
  if (n === undefined) return undefined;
  for (let p = 0; p <= 32; p++) if (maskOf(p) === n) return p;
  return undefined;
}

/** Parses "a.b.c.d/p"; returns a reason (to be prefixed with the flag) when it is not usable. */
export function parseCidr(text: string): Cidr | string {
  const m = /^(\d+\.\d+\.\d+\.\d+)\/(\d{1,2})$/.exec(text);
  const ip = m ? ipv4ToInt(m[1]) : undefined;
  if (!m || ip === undefined) return "must be an IPv4 CIDR like 192.168.99.1/24";
  const prefixLength = Number(m[2]);
  // Below /8 is not a host-only network; above /30 leaves no room for host, DHCP server and guests.
  if (prefixLength < 8 || prefixLength > 30) return "must have a prefix length between 8 and 30";
  const mask = maskOf(prefixLength);
  const network = (ip & mask) >>> 0;
  const broadcast = (network | (~mask >>> 0)) >>> 0;
  if (ip === network || ip === broadcast) {
    return `must name the host's address inside the network (e.g. ${intToIpv4(network + 1)}/${prefixLength}), not the network or broadcast address`;
  }
  return {
    address: intToIpv4(ip),
    prefixLength,
    netmask: intToIpv4(mask),
    network: intToIpv4(network),
    broadcast: intToIpv4(broadcast),
    text: `${intToIpv4(ip)}/${prefixLength}`,
  };
}

/** The network address of `ip` under a prefix length: networkAddress("192.168.99.7", 24) = "192.168.99.0". */
export function networkAddress(ip: string, prefixLength: number): string {
  return intToIpv4((ipv4ToInt(ip)! & maskOf(prefixLength)) >>> 0);
}

/** True when the two networks share any address. */
export function networksOverlap(a: Pick<Cidr, "network" | "prefixLength">, b: Pick<Cidr, "network" | "prefixLength">): boolean {
  const p = Math.min(a.prefixLength, b.prefixLength);
  const mask = maskOf(p);
  return (ipv4ToInt(a.network)! & mask) >>> 0 === (ipv4ToInt(b.network)! & mask) >>> 0;
}

/** The address `offset` hosts into the network (1 = first host). */
export function hostInNetwork(c: Cidr, offset: number): string {
  return intToIpv4((ipv4ToInt(c.network)! + offset) >>> 0);
}

/** Asks the kernel for a free TCP port on 127.0.0.1. Another process may take it before use. */
export function findFreePort(host = "127.0.0.1"): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.once("error", reject);
    srv.listen(0, host, () => {
      const addr = srv.address();
      const port = typeof addr === "object" && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

export type TcpProbe = { ok: true } | { ok: false; reason: "refused" | "timeout" | "unreachable" | "error"; message: string };

/** Opens and closes one TCP connection. Never throws except on abort. */
export function probeTcp(host: string, port: number, timeoutMs: number, signal?: AbortSignal): Promise<TcpProbe> {
  signal?.throwIfAborted();
  return new Promise((resolve, reject) => {
    const sock = new Socket();
    let done = false;
    const finish = (r: TcpProbe | { abort: unknown }) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      signal?.removeEventListener("abort", onAbort);
      sock.destroy();
      if ("abort" in r) reject(r.abort);
      else resolve(r);
    };
    const onAbort = () => finish({ abort: signal!.reason });
    const timer = setTimeout(
      () => finish({ ok: false, reason: "timeout", message: `timed out after ${formatDuration(timeoutMs)}` }),
      timeoutMs,
    );
    signal?.addEventListener("abort", onAbort, { once: true });
    sock.once("connect", () => finish({ ok: true }));
    sock.once("error", (err: NodeJS.ErrnoException) => {
      if (err.code === "ECONNREFUSED") finish({ ok: false, reason: "refused", message: "connection refused" });
      else if (err.code === "EHOSTUNREACH" || err.code === "ENETUNREACH")
        finish({ ok: false, reason: "unreachable", message: "host unreachable" });
      else finish({ ok: false, reason: "error", message: err.message });
    });
    sock.connect(port, host);
  });
}

/** "10s", "1.5s", "250ms", "2m" — for messages. */
export function formatDuration(ms: number): string {
  if (ms < 1000) return `${ms}ms`;
  if (ms % 60_000 === 0) return `${ms / 60_000}m`;
  const s = ms / 1000;
  return `${Number.isInteger(s) ? s : s.toFixed(1)}s`;
}

/** "198.18.0.3:22", "[::1]:22". */
export function hostPort(host: string, port: number): string {
  return `${host.includes(":") ? `[${host}]` : host}:${port}`;
}
