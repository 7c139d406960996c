// Overlay networks, decided purely: names, subnets and gateways as users give them, the default
// pool's next /24, the next free VNI and address (IPAM), and the attachments of service specs.
// The API holds the rows and the locks; this file only says what is free and what is valid.
// The table each node receives is built in overlay-view.ts.
import { ConflictError, InvalidError } from "./errors";
import type { NetworkAttachment } from "./types";

/** The default address pool, as swarm's: each network without --subnet takes its first free /24. */
export const OVERLAY_DEFAULT_POOL = "10.0.0.0/8";
/** VXLAN identifiers given to overlay networks (below 4096 is left to VLAN-numbered setups, as swarm does). */
export const VNI_MIN = 4096;
export const VNI_MAX = 16_777_215;
/** The one driver a cluster network has. */
export const OVERLAY_DRIVER = "overlay";

const NETWORK_NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;
const DNS_LABELS = /^[a-zA-Z0-9](?:[a-zA-Z0-9_-]{0,62})(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9_-]{0,62}))*$/;

/** A parsed IPv4 CIDR: the network address and prefix length (addresses as unsigned 32-bit numbers). */
export interface Cidr {
  readonly base: number;
  readonly prefix: number;
}

/** An IPv4 dotted quad as a number, or undefined when it is not one. */
export function parseIpv4(s: string): number | undefined {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(s);
  if (!m) return undefined;
  const bytes = m.slice(1).map(Number);
  if (bytes.some((b, i) => b > 255 || (m[i + 1].length > 1 && m[i + 1].startsWith("0")))) return undefined;
  return ((bytes[0] << 24) >>> 0) + (bytes[1] << 16) + (bytes[2] << 8) + bytes[3];
}

export function formatIpv4(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join(".");
}

const size = (c: Cidr) => 2 ** (32 - c.prefix);

/** "10.0.1.0/24" → Cidr, or undefined when it is not an IPv4 CIDR whose address is its network's. */
export function parseCidr(s: string): Cidr | undefined {
  const m = /^([^/]+)\/(\d{1,2})$/.exec(s);
  if (!m) return undefined;
  const base = parseIpv4(m[1]);
  const prefix = Number(m[2]);
  if (base === undefined || prefix > 32) return undefined;
  if (base % 2 ** (32 - prefix) !== 0) return undefined;
  return { base, prefix };
}

export const formatCidr = (c: Cidr) => `${formatIpv4(c.base)}/${c.prefix}`;

export function cidrsOverlap(a: Cidr, b: Cidr): boolean {
  return a.base < b.base + size(b) && b.base < a.base + size(a);
}

export function inCidr(ip: number, c: Cidr): boolean {
  return ip >= c.base && ip < c.base + size(c);
}

/** Checks a network name against docker's rules; returns it. */
export function validateNetworkName(name: unknown): string {
  if (typeof name !== "string" || name === "") throw new InvalidError("network name is required", { field: "name" });
  if (name.length > 63) throw new InvalidError(`network name ${JSON.stringify(name)} is longer than 63 characters`, { field: "name" });
  if (!NETWORK_NAME.test(name)) {
    throw new InvalidError(
      `invalid network name ${JSON.stringify(name)}: start with a letter or digit, then use letters, digits, _ . or -`,
      {
        field: "name",
        value: name,
      },
    );
  }
  return name;
}

/** An existing network, as IPAM sees it. */
export interface NetworkRange {
  readonly name: string;
  readonly subnet: string;
}

/**
 * The subnet and gateway of a new network: the user's, checked (an IPv4 CIDR of /8 to /29, not
 * overlapping another overlay network, a gateway inside it that is neither its network nor its
 * broadcast address), or the first /24 of the default pool that overlaps none. Throws
 * InvalidError naming `subnet`/`gateway`, ConflictError naming the network in the way.
 */
export function chooseSubnet(
  wanted: { subnet?: string; gateway?: string },
  existing: readonly NetworkRange[],
): { subnet: string; gateway: string } {
  const taken = existing.map((n) => ({ name: n.name, cidr: parseCidr(n.subnet) })).filter((n) => n.cidr) as {
    name: string;
    cidr: Cidr;
  }[];
  let cidr: Cidr;
  if (wanted.subnet !== undefined) {
    const c = parseCidr(wanted.subnet);
    if (!c)
      throw new InvalidError(
        `subnet ${JSON.stringify(wanted.subnet)} is not an IPv4 CIDR such as 10.0.9.0/24 (address bits past the prefix must be 0)`,
        {
          field: "subnet",
          value: wanted.subnet,
        },
      );
    if (c.prefix < 8 || c.prefix > 29)
      throw new InvalidError(`subnet ${wanted.subnet}: the prefix must be from /8 to /29`, { field: "subnet", value: wanted.subnet });
    const clash = taken.find((t) => cidrsOverlap(t.cidr, c));
    if (clash)
      throw new ConflictError(`subnet ${wanted.subnet} overlaps network "${clash.name}" (${formatCidr(clash.cidr)})`, {
        field: "subnet",
        value: wanted.subnet,
        network: clash.name,
      });
    cidr = c;
  } else {
    if (wanted.gateway !== undefined) throw new InvalidError("a gateway needs its subnet: give --subnet too", { field: "gateway" });
    const pool = parseCidr(OVERLAY_DEFAULT_POOL)!;
    let found: Cidr | undefined;
    for (let base = pool.base; base < pool.base + size(pool); base += 256) {
      const c = { base, prefix: 24 };
      const clash = taken.find((t) => cidrsOverlap(t.cidr, c));
      // Skip past the whole network in the way (a /16 holds 256 /24s).
      if (clash) base = Math.max(base, clash.cidr.base + size(clash.cidr) - 256);
      else {
        found = c;
        break;
      }
    }
    if (!found)
      throw new ConflictError(`the default pool ${OVERLAY_DEFAULT_POOL} has no free /24 left: give --subnet`, { field: "subnet" });
    cidr = found;
  }
  let gateway = cidr.base + 1;
  if (wanted.gateway !== undefined) {
    const g = parseIpv4(wanted.gateway);
    if (g === undefined) throw new InvalidError(`gateway ${JSON.stringify(wanted.gateway)} is not an IPv4 address`, { field: "gateway" });
    if (!inCidr(g, cidr) || g === cidr.base || g === cidr.base + size(cidr) - 1)
      throw new InvalidError(`gateway ${wanted.gateway} is not a host address of subnet ${formatCidr(cidr)}`, {
        field: "gateway",
        value: wanted.gateway,
      });
    gateway = g;
  }
  return { subnet: formatCidr(cidr), gateway: formatIpv4(gateway) };
}

/** The lowest VNI in VNI_MIN..VNI_MAX that no network has. */
export function nextVni(used: readonly number[]): number {
  const sorted = [...new Set(used)].filter((v) => v >= VNI_MIN).sort((a, b) => a - b);
  let vni = VNI_MIN;
  for (const v of sorted) {
    if (v > vni) break;
    if (v === vni) vni++;
  }
  if (vni > VNI_MAX) throw new ConflictError("no VXLAN identifier is left", { field: "vni" });
  return vni;
}

/**
 * The first host address of `subnet` after `after` (wrapping round; from the start without it)
 * that is not the gateway and not in `used`, or undefined when the network is full. The network
 * and broadcast addresses are never given. Serial, as swarm's IPAM: an address just freed is
 * given again only once the rest of the subnet has been, because its container may still hold
 * it (a removed service's containers run through their stop grace period after its rows are gone).
 */
export function nextFreeAddress(subnet: string, gateway: string, used: ReadonlySet<string>, after?: string): string | undefined {
  const c = parseCidr(subnet);
  if (!c) throw new InvalidError(`subnet ${subnet} is not an IPv4 CIDR`, { field: "subnet" });
  const taken = new Set([...used].map(parseIpv4));
  taken.add(parseIpv4(gateway));
  const first = c.base + 1;
  const hosts = size(c) - 2;
  const last = after === undefined ? undefined : parseIpv4(after);
  const start = last !== undefined && last >= first && last < first + hosts ? last + 1 - first : 0;
  for (let i = 0; i < hosts; i++) {
    const ip = first + ((start + i) % hosts);
    if (!taken.has(ip)) return formatIpv4(ip);
  }
  return undefined;
}

/**
 * Checks a spec's `networks`: a list of `{target, aliases}`, each network once, aliases DNS
 * names. Whether the targets exist is the API's to check (it resolves them to ids).
 */
export function validateNetworkAttachments(networks: unknown): void {
  if (!Array.isArray(networks)) throw new InvalidError("networks must be a list", { field: "networks" });
  const seen = new Set<string>();
  (networks as NetworkAttachment[]).forEach((n, i) => {
    const at = `networks[${i}]`;
    if (typeof n !== "object" || n === null) throw new InvalidError(`${at} must be {target, aliases}`, { field: at });
    if (typeof n.target !== "string" || n.target === "")
      throw new InvalidError(`${at}.target must name a network`, { field: `${at}.target`, value: n.target });
    if (seen.has(n.target)) throw new InvalidError(`network ${n.target} is given twice`, { field: `${at}.target`, value: n.target });
    seen.add(n.target);
    if (!Array.isArray(n.aliases)) throw new InvalidError(`${at}.aliases must be a list of names`, { field: `${at}.aliases` });
    n.aliases.forEach((a, j) => {
      if (typeof a !== "string" || a.length > 253 || !DNS_LABELS.test(a))
        throw new InvalidError(`alias ${JSON.stringify(a)} is not a DNS name`, { field: `${at}.aliases[${j}]`, value: a });
    });
  });
}

/**
 * `--network NAME` or `--network name=NAME,alias=A[,alias=B]` (docker's long form; `target=` is
 * taken for `name=`). Other keys (driver-opt, ip, link-local-ip, mac-address) are refused by name.
 */
export function parseNetworkFlag(v: string, flag = "--network"): { target: string; aliases?: string[] } {
  if (!v.includes("=")) {
    if (v.trim() === "") throw new InvalidError("a network name is required", { field: flag });
    return { target: v.trim() };
  }
  let target: string | undefined;
  const aliases: string[] = [];
  for (const part of v.split(",")) {
    const at = part.indexOf("=");
    const key = at < 0 ? part.trim() : part.slice(0, at).trim();
    const value = at < 0 ? "" : part.slice(at + 1).trim();
    if (key === "name" || key === "target") target = value;
    else if (key === "alias") aliases.push(value);
    else if (["driver-opt", "ip", "ip6", "link-local-ip", "mac-address"].includes(key))
      throw new InvalidError(`${key} is not supported yet`, { field: flag, value: key });
    else throw new InvalidError(`unknown key ${JSON.stringify(key)} (use name=NETWORK,alias=NAME)`, { field: flag, value: key });
  }
  if (!target) throw new InvalidError(`name=NETWORK is required in ${JSON.stringify(v)}`, { field: flag });
  return { target, ...(aliases.length ? { aliases } : {}) };
}
