/**
 * IPv4 address management for the bridge subnet. Pure: which addresses are taken is the caller's
 * state (the endpoints in network.json), so nothing here can drift from what is persisted.
 */
import { ConflictError, InvalidError } from "@flotilla/core";

/** A parsed IPv4 subnet; addresses are unsigned 32-bit integers. */
export interface Subnet {
  /** Canonical `a.b.c.d/len`. */
  readonly cidr: string;
  readonly network: number;
  readonly prefixLen: number;
  readonly broadcast: number;
  /** The first host address; the bridge holds it. */
  readonly gateway: number;
}

const OCTET = "(25[0-5]|2[0-4]\\d|1\\d\\d|[1-9]?\\d)";
const IPV4 = new RegExp(`^${OCTET}\\.${OCTET}\\.${OCTET}\\.${OCTET}$`);

/** True for a dotted-quad IPv4 address. */
export function isIpv4(s: string): boolean {
  return IPV4.test(s);
}

/** `198.19.0.2` → 0xc6130002. Throws InvalidError on anything but a dotted quad. */
export function ipToInt(ip: string): number {
  const m = IPV4.exec(ip);
  if (!m) throw new InvalidError(`invalid IPv4 address: ${JSON.stringify(ip)}`);
  return ((+m[1] << 24) | (+m[2] << 16) | (+m[3] << 8) | +m[4]) >>> 0;
}

/** 0xc6130002 → `198.19.0.2`. */
export function intToIp(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join(".");
}

function maskOf(prefixLen: number): number {
  return prefixLen === 0 ? 0 : (0xffffffff << (32 - prefixLen)) >>> 0;
}

/**
 * Parses `a.b.c.d/len`. Host bits must be zero (a typo such as 198.19.0.1/24 is refused rather
 * than guessed at), and the prefix must leave room for a gateway and a container: /8 to /30.
 * `field` names the input in the error (subnet, IPAM.Config[0].IPRange, …).
 */
export function parseSubnet(cidr: string, field = "subnet"): Subnet {
  const [addr, len, extra] = cidr.split("/");
  const prefixLen = Number(len);
  if (extra !== undefined || !/^\d{1,2}$/.test(len ?? "") || prefixLen < 8 || prefixLen > 30) {
    throw new InvalidError(`invalid ${field} ${JSON.stringify(cidr)}: want a.b.c.d/len with len 8..30`, { field });
  }
  if (!isIpv4(addr ?? "")) throw new InvalidError(`invalid ${field} ${JSON.stringify(cidr)}: not an IPv4 address`, { field });
  const ip = ipToInt(addr);
  const mask = maskOf(prefixLen);
  const network = (ip & mask) >>> 0;
  if (network !== ip) {
    throw new InvalidError(`invalid ${field} ${cidr}: host bits set (did you mean ${intToIp(network)}/${prefixLen}?)`, { field });
  }
  const broadcast = (network | ~mask) >>> 0;
  return { cidr: `${intToIp(network)}/${prefixLen}`, network, prefixLen, broadcast, gateway: network + 1 };
}

/** True when ip (an integer) lies in the subnet. */
export function inSubnet(subnet: Subnet, ip: number): boolean {
  return (ip & maskOf(subnet.prefixLen)) >>> 0 === subnet.network;
}

/** True when two prefixes share at least one address. */
export function prefixesOverlap(a: { network: number; prefixLen: number }, b: { network: number; prefixLen: number }): boolean {
  const len = Math.min(a.prefixLen, b.prefixLen);
  const mask = maskOf(len);
  return (a.network & mask) >>> 0 === (b.network & mask) >>> 0;
}

/**
 * The next free container address after `last` (wrapping around), skipping the network, gateway
 * and broadcast addresses and everything in `taken`. Handing addresses out round-robin rather
 * than lowest-first keeps a just-released address (still in peers' ARP caches and conntrack)
 * unused for as long as the subnet allows. Throws ConflictError when the subnet is full.
 */
export function allocateAddress(subnet: Subnet, taken: ReadonlySet<string>, last?: string, range?: Subnet): string {
  // An ip-range (Docker's --ip-range) narrows the pool to its addresses, all of them host
  // addresses of the subnet it lies in; the gateway is then excluded through `taken`.
  const first = range ? Math.max(range.network, subnet.network + 1) : subnet.gateway + 1;
  const end = range ? Math.min(range.broadcast, subnet.broadcast - 1) : subnet.broadcast - 1;
  const count = end - first + 1;
  let start = first;
  if (last !== undefined && isIpv4(last)) {
    const l = ipToInt(last);
    if (l >= first && l < end) start = l + 1;
  }
  for (let i = 0; i < count; i++) {
    const candidate = first + ((start - first + i) % count);
    const ip = intToIp(candidate);
    if (!taken.has(ip)) return ip;
  }
  throw new ConflictError(`no available IPv4 addresses on network ${range?.cidr ?? subnet.cidr}`, { subnet: subnet.cidr });
}

/**
 * A locally administered MAC derived from the IPv4 address (02:42 + the four octets, as Docker
 * does): a reused address keeps its MAC, so neighbours' ARP entries stay right.
 */
export function macForAddress(ip: string): string {
  const n = ipToInt(ip);
  return ["02", "42", n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255]
    .map((x) => (typeof x === "string" ? x : x.toString(16).padStart(2, "0")))
    .join(":");
}
