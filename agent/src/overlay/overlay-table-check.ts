/**
 * Checks a NodeNetworkTable as it arrived over the wire (JSON from the control plane). Pure. A
 * table without a version, a node address or a network list is refused whole; a network with a
 * bad field is left out with a message naming it, so one mistake in the control plane cannot take
 * every overlay of the node down. Entries inside a good network that are wrong (an endpoint
 * outside the subnet, a backend that is no IPv4 address) are dropped one by one, also named.
 */
import { InvalidError, type NodeNetworkTable, type OverlayEndpoint, type OverlayNetworkView, type OverlayService } from "@flotilla/core";
import { inSubnet, ipToInt, isIpv4, parseSubnet } from "../network/ipam";

/** The usable part of a table and why the rest was left out. */
export interface CheckedNetworkTable {
  table: NodeNetworkTable;
  errors: string[];
}

const MIN_VNI = 1;
const MAX_VNI = 16_777_215;

const str = (v: unknown): v is string => typeof v === "string" && v !== "";
const strList = (v: unknown): v is string[] => Array.isArray(v) && v.every((x) => typeof x === "string");

function checkNetwork(raw: Record<string, unknown>, errors: string[]): OverlayNetworkView | undefined {
  const label = `network ${typeof raw.name === "string" ? raw.name : JSON.stringify(raw.id)}`;
  const fail = (field: string, why: string) => {
    errors.push(`${label} left out: ${field} ${why}`);
    return undefined;
  };
  if (!str(raw.id) || !/^[A-Za-z0-9_.-]+$/.test(raw.id)) return fail("id", `${JSON.stringify(raw.id)} is not an id`);
  if (!str(raw.name)) return fail("name", "is missing");
  if (!Number.isInteger(raw.vni) || (raw.vni as number) < MIN_VNI || (raw.vni as number) > MAX_VNI)
    return fail("vni", `${JSON.stringify(raw.vni)} is not in ${MIN_VNI}..${MAX_VNI}`);
  let subnet;
  try {
    subnet = parseSubnet(String(raw.subnet));
  } catch {
    return fail("subnet", `${JSON.stringify(raw.subnet)} is not an IPv4 CIDR`);
  }
  if (!isIpv4(String(raw.gateway)) || !inSubnet(subnet, ipToInt(String(raw.gateway))))
    return fail("gateway", `${JSON.stringify(raw.gateway)} is not an address of ${subnet.cidr}`);
  if (!strList(raw.peers) || !raw.peers.every(isIpv4)) return fail("peers", "is not a list of IPv4 addresses");
  if (!Array.isArray(raw.endpoints)) return fail("endpoints", "is not a list");
  if (!Array.isArray(raw.services)) return fail("services", "is not a list");
  const inNet = (ip: unknown): ip is string => typeof ip === "string" && isIpv4(ip) && inSubnet(subnet, ipToInt(ip));
  const endpoints: OverlayEndpoint[] = [];
  const seenIp = new Set<string>();
  for (const e of raw.endpoints as Array<Record<string, unknown> | null>) {
    const x = e ?? {};
    if (!inNet(x.ip) || !isIpv4(String(x.nodeAddress)) || !str(x.taskId) || typeof x.mac !== "string") {
      errors.push(`${label}: endpoint ${JSON.stringify(e)} left out: needs taskId, ip in ${subnet.cidr}, mac and an IPv4 nodeAddress`);
      continue;
    }
    if (seenIp.has(x.ip)) {
      errors.push(`${label}: endpoint ${x.ip} listed twice; the second (task ${x.taskId}) left out`);
      continue;
    }
    seenIp.add(x.ip);
    endpoints.push({
      taskId: x.taskId,
      serviceId: typeof x.serviceId === "string" ? x.serviceId : "",
      ip: x.ip,
      mac: x.mac.toLowerCase(),
      nodeAddress: String(x.nodeAddress),
    });
  }
  const services: OverlayService[] = [];
  for (const s of raw.services as Array<Record<string, unknown> | null>) {
    const x = s ?? {};
    const mode = x.endpointMode === "dnsrr" ? "dnsrr" : x.endpointMode === "vip" ? "vip" : undefined;
    if (!str(x.id) || !str(x.name) || !mode || !strList(x.backends) || (x.aliases !== undefined && !strList(x.aliases))) {
      errors.push(`${label}: service ${JSON.stringify(x.name ?? x.id)} left out: needs id, name, endpointMode vip|dnsrr and backends`);
      continue;
    }
    if (mode === "vip" && !inNet(x.vip)) {
      const why = x.vip === undefined ? "endpointMode vip needs a vip" : `vip ${JSON.stringify(x.vip)} is not an address of ${subnet.cidr}`;
      errors.push(`${label}: service ${x.name} left out: ${why}`);
      continue;
    }
    const backends = (x.backends as string[]).filter((b) => {
      if (inNet(b)) return true;
      errors.push(`${label}: service ${x.name}: backend ${JSON.stringify(b)} left out: not an address of ${subnet.cidr}`);
      return false;
    });
    services.push({
      id: x.id,
      name: x.name,
      endpointMode: mode,
      ...(mode === "vip" ? { vip: x.vip as string } : {}),
      aliases: (x.aliases as string[] | undefined) ?? [],
      backends: [...new Set(backends)],
    });
  }
  return {
    id: raw.id,
    name: raw.name,
    vni: raw.vni as number,
    subnet: subnet.cidr,
    gateway: String(raw.gateway),
    peers: [...new Set(raw.peers)],
    endpoints,
    services,
  };
}

/**
 * Splits a received table into the networks to serve and what was left out; InvalidError when it
 * is no table at all. A table without nodeAddress and without networks is the control plane
 * saying this node can take part in none (`unavailable`: why): applied, it removes every overlay.
 */
export function checkNetworkTable(raw: unknown): CheckedNetworkTable {
  const t = raw as { version?: unknown; nodeAddress?: unknown; networks?: unknown; unavailable?: unknown } | null;
  if (typeof t !== "object" || t === null || typeof t.version !== "string" || !Array.isArray(t.networks))
    throw new InvalidError("network table needs a string version and a networks list", { field: "networks" });
  if (t.nodeAddress === undefined && t.networks.length === 0) {
    const why = typeof t.unavailable === "string" && t.unavailable ? t.unavailable : "the control plane gave this node no address";
    return { table: { version: t.version, networks: [], unavailable: why }, errors: [] };
  }
  if (typeof t.nodeAddress !== "string" || !isIpv4(t.nodeAddress))
    throw new InvalidError(`network table: nodeAddress ${JSON.stringify(t.nodeAddress)} is not an IPv4 address`, { field: "nodeAddress" });
  const errors: string[] = [];
  const networks: OverlayNetworkView[] = [];
  const vnis = new Map<number, string>();
  const names = new Set<string>();
  for (const n of t.networks as unknown[]) {
    const v = checkNetwork((typeof n === "object" && n !== null ? n : {}) as Record<string, unknown>, errors);
    if (!v) continue;
    const clash = vnis.get(v.vni);
    if (clash !== undefined || names.has(v.name) || networks.some((x) => x.id === v.id)) {
      errors.push(`network ${v.name} left out: its id, name or vni ${v.vni} is already used by another network of the table`);
      continue;
    }
    vnis.set(v.vni, v.name);
    names.add(v.name);
    networks.push(v);
  }
  return { table: { version: t.version, nodeAddress: t.nodeAddress, networks }, errors };
}
