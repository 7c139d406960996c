/**
 * POST /networks/create: Docker's request validated into a plan, and the subnet chosen from the
 * address pools when the user gave none. Pure: every refusal names the field before anything is
 * made. Only what the bridge driver here honours is accepted; the rest is refused by name.
 */
import { ConflictError, InvalidError, NotSupportedError } from "@flotilla/core";
import { intToIp, ipToInt, isIpv4, parseSubnet, prefixesOverlap, type Subnet } from "./ipam";

/** The body of POST /networks/create (Engine API 1.41). */
export interface CreateNetworkBody {
  Name?: string;
  CheckDuplicate?: boolean;
  Driver?: string;
  Scope?: string;
  Internal?: boolean;
  Attachable?: boolean;
  Ingress?: boolean;
  EnableIPv6?: boolean;
  ConfigOnly?: boolean;
  ConfigFrom?: { Network?: string } | null;
  IPAM?: {
    Driver?: string;
    Config?: Array<{ Subnet?: string; IPRange?: string; Gateway?: string; AuxiliaryAddresses?: Record<string, string> | null }> | null;
    Options?: Record<string, string> | null;
  } | null;
  Options?: Record<string, string> | null;
  Labels?: Record<string, string> | null;
}

/** A validated create request. subnet undefined: take one from the pools. */
export interface NetworkPlan {
  name: string;
  internal: boolean;
  attachable: boolean;
  labels: Record<string, string>;
  subnet?: Subnet;
  gateway?: string;
  ipRange?: Subnet;
}

/** Docker's default-address-pools entry: split `base` into subnets of prefix length `size`. */
export interface AddressPool {
  base: string;
  size: number;
}

/** Docker's defaults: 172.17.0.0/12 in /16s, then 192.168.0.0/16 in /20s. */
export const DEFAULT_POOLS: readonly AddressPool[] = [
  { base: "172.17.0.0/12", size: 16 },
  { base: "192.168.0.0/16", size: 20 },
];

/** Names Docker keeps for its predefined networks (and "default", NetworkMode's alias of bridge). */
export const PREDEFINED = ["bridge", "host", "none", "default"] as const;

const NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;

/** Checks a network name (also used by connect and run): Docker's characters, ≤ 64. */
export function validateNetworkName(name: unknown): string {
  if (typeof name !== "string" || !name) throw new InvalidError("network name is required", { field: "Name" });
  if (!NAME.test(name) || name.length > 64) {
    throw new InvalidError(`invalid network name ${JSON.stringify(name)}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed, at most 64`, {
      field: "Name",
    });
  }
  return name;
}

/** Validates the create request; ConflictError for a predefined name, InvalidError/NotSupportedError naming the field. */
export function parseCreateNetwork(body: CreateNetworkBody): NetworkPlan {
  if (!body || typeof body !== "object") throw new InvalidError("network create: the body must be a JSON object", { field: "body" });
  const name = validateNetworkName(body.Name);
  if ((PREDEFINED as readonly string[]).includes(name))
    throw new ConflictError(`${name} is a pre-defined network and cannot be created`, { field: "Name" });
  const driver = body.Driver || "bridge";
  if (driver === "overlay")
    throw new NotSupportedError(
      "network driver overlay: overlay networks are created with ctl network create --driver overlay (the control plane attaches them to nodes); the Engine API of a node only creates bridge networks",
      { field: "Driver" },
    );
  if (driver !== "bridge")
    throw new NotSupportedError(`network driver ${JSON.stringify(driver)} is not supported: only bridge`, { field: "Driver" });
  if (body.Scope && body.Scope !== "local")
    throw new NotSupportedError(`network scope ${body.Scope} is not supported: only local`, { field: "Scope" });
  if (body.EnableIPv6) throw new NotSupportedError("IPv6 networks are not supported", { field: "EnableIPv6" });
  if (body.Ingress)
    throw new NotSupportedError("ingress networks are not supported: services publish ports through the routing mesh", {
      field: "Ingress",
    });
  if (body.ConfigOnly || body.ConfigFrom?.Network)
    throw new NotSupportedError("config-only networks are not supported", { field: "ConfigFrom" });
  const opts = Object.keys(body.Options ?? {});
  if (opts.length)
    throw new NotSupportedError(`network driver options are not supported: ${opts.join(", ")}`, { field: `Options.${opts[0]}` });
  const ipam = body.IPAM ?? {};
  if (ipam.Driver && ipam.Driver !== "default")
    throw new NotSupportedError(`IPAM driver ${ipam.Driver} is not supported: only default`, { field: "IPAM.Driver" });
  const ipamOpts = Object.keys(ipam.Options ?? {});
  if (ipamOpts.length)
    throw new NotSupportedError(`IPAM options are not supported: ${ipamOpts.join(", ")}`, { field: `IPAM.Options.${ipamOpts[0]}` });
  const configs = ipam.Config ?? [];
  if (configs.length > 1)
    throw new NotSupportedError("only one IPAM config (one IPv4 subnet) per network is supported", { field: "IPAM.Config" });
  const labels = body.Labels ?? {};
  for (const [k, v] of Object.entries(labels))
    if (typeof v !== "string") throw new InvalidError(`label ${k} must be a string`, { field: `Labels.${k}` });
  const plan: NetworkPlan = { name, internal: !!body.Internal, attachable: !!body.Attachable, labels: { ...labels } };
  const cfg = configs[0];
  if (!cfg) return plan;
  const f = (k: string) => `IPAM.Config[0].${k}`;
  if (cfg.AuxiliaryAddresses && Object.keys(cfg.AuxiliaryAddresses).length)
    throw new NotSupportedError("auxiliary addresses are not supported", { field: f("AuxiliaryAddresses") });
  if (!cfg.Subnet) {
    if (cfg.IPRange || cfg.Gateway) throw new InvalidError("an ip-range or gateway needs a subnet (--subnet)", { field: f("Subnet") });
    return plan;
  }
  if (cfg.Subnet.includes(":")) throw new NotSupportedError(`IPv6 subnet ${cfg.Subnet} is not supported`, { field: f("Subnet") });
  const subnet = parseSubnet(cfg.Subnet, f("Subnet"));
  plan.subnet = subnet;
  if (cfg.IPRange) {
    const range = parseSubnet(cfg.IPRange, f("IPRange"));
    if (range.prefixLen < subnet.prefixLen || !prefixesOverlap(range, subnet)) {
      throw new InvalidError(`ip-range ${range.cidr} is not inside subnet ${subnet.cidr}`, { field: f("IPRange") });
    }
    plan.ipRange = range;
  }
  if (cfg.Gateway) {
    if (!isIpv4(cfg.Gateway)) throw new InvalidError(`invalid gateway ${JSON.stringify(cfg.Gateway)}`, { field: f("Gateway") });
    const gw = ipToInt(cfg.Gateway);
    if (!(gw > subnet.network && gw < subnet.broadcast)) {
      throw new InvalidError(`gateway ${cfg.Gateway} is not a host address of subnet ${subnet.cidr}`, { field: f("Gateway") });
    }
    plan.gateway = cfg.Gateway;
  }
  return plan;
}

/** Where a subnet clashes: another network, the default bridge, a host route. */
export interface TakenPrefix {
  network: number;
  prefixLen: number;
  /** Said in the error: `network web (198.18.5.0/24)`, `host route … dev eth0`. */
  what: string;
}

/** Refuses a user subnet that overlaps anything taken, naming the other party. */
export function checkSubnet(subnet: Subnet, taken: readonly TakenPrefix[]): void {
  const other = taken.find((t) => prefixesOverlap(subnet, t));
  if (other)
    throw new ConflictError(`subnet ${subnet.cidr} overlaps ${other.what}`, { field: "IPAM.Config[0].Subnet", subnet: subnet.cidr });
}

/** The first subnet of the pools that overlaps nothing taken. ConflictError when all are. */
export function chooseSubnet(pools: readonly AddressPool[], taken: readonly TakenPrefix[]): Subnet {
  for (const pool of pools) {
    const base = parseSubnet(pool.base, "address pool");
    if (!(pool.size >= base.prefixLen && pool.size <= 30))
      throw new InvalidError(`address pool ${pool.base}: size ${pool.size} must be ${base.prefixLen}..30`);
    const step = 2 ** (32 - pool.size);
    for (let n = base.network; n <= base.broadcast; n += step) {
      const candidate = parseSubnet(`${intToIp(n)}/${pool.size}`);
      if (!taken.some((t) => prefixesOverlap(candidate, t))) return candidate;
    }
  }
  throw new ConflictError("could not find an available, non-overlapping IPv4 address pool among the defaults to assign to the network", {
    field: "IPAM.Config",
  });
}
