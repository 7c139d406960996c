// One container's endpoint on the host network, in the kernel: the record attach() journals for
// it (namespace and veth names, address, MAC, published ports), and plugging, re-plugging and
// unplugging its namespace, veth and rules. HostNetwork decides when, one call at a time, with
// the state file as its journal; these functions do the work on one endpoint.
import type { Firewall } from "./firewall";
import { allocateAddress, intToIp, macForAddress, type Subnet } from "./ipam";
import { createNetns, deleteLink, deleteNetns, plugVeth, sandboxNames, showLink } from "./links";
import type { EndpointRecord, NetworkMode, NetworkState } from "./state-file";

/** The default bridge an endpoint is planned on. */
export interface BridgeNetwork {
  bridge: string;
  subnet: Subnet;
}

/**
 * A pending record for a new endpoint: bridge mode takes the next free address on the bridge
 * (after `state.lastAddress`), user mode the address its user network gave (`ipAddress`). Its
 * published ports are reserved by HostNetwork (ports.ts), which holds their sockets.
 */
export function planEndpoint(
  net: BridgeNetwork,
  state: NetworkState,
  containerId: string,
  mode: NetworkMode,
  ipAddress: string | undefined,
): EndpointRecord {
  const names = sandboxNames(net.bridge, containerId);
  const record: EndpointRecord = {
    containerId,
    mode,
    status: "pending",
    netns: mode === "host" ? null : names.netns,
    veth: mode === "bridge" ? names.veth : null,
    ipAddress: "",
    macAddress: "",
    prefixLen: 0,
    gateway: "",
    ports: [],
  };
  const endpoints = Object.values(state.endpoints);
  if (mode === "bridge") {
    record.ipAddress = allocateAddress(net.subnet, new Set(endpoints.map((e) => e.ipAddress)), state.lastAddress);
    record.macAddress = macForAddress(record.ipAddress);
    record.prefixLen = net.subnet.prefixLen;
    record.gateway = intToIp(net.subnet.gateway);
  } else if (mode === "user") {
    record.ipAddress = ipAddress!;
  }
  return record;
}

/** Makes the endpoint: its namespace, its veth on the bridge (bridge mode), its rules (bridge and user mode). */
export async function plugEndpoint(r: EndpointRecord, bridge: string, firewall: Firewall): Promise<void> {
  if (r.netns) await createNetns(r.netns);
  if (r.mode === "bridge") await plugVeth({ ...r, bridge, netns: r.netns!, veth: r.veth! });
  if (r.mode === "bridge" || r.mode === "user") await firewall.addEndpoint(r);
}

/**
 * Undoes an endpoint, whatever part of it exists: rules, then veth, then namespace. `firewall`
 * null leaves the rules (teardown removes our chains whole).
 */
export async function unplugEndpoint(r: EndpointRecord, firewall: Firewall | null): Promise<void> {
  if (firewall && (r.mode === "bridge" || r.mode === "user")) await firewall.removeTagged((id) => id === r.containerId);
  if (r.veth) await deleteLink("veth", r.veth);
  if (r.netns) await deleteNetns(r.netns);
}

/**
 * Re-plugs a live bridge-mode container whose host veth is gone or off the bridge (deleting
 * either end of a pair deletes both, so a missing host end means eth0 is gone too). Returns
 * whether anything had to change.
 */
export async function replugEndpoint(r: EndpointRecord, bridge: string): Promise<boolean> {
  const link = await showLink(r.veth!);
  if (!link) {
    await plugVeth({ ...r, bridge, netns: r.netns!, veth: r.veth! });
    return true;
  }
  if (link.master === bridge && link.flags?.includes("UP")) return false;
  await deleteLink("veth", r.veth!);
  await plugVeth({ ...r, bridge, netns: r.netns!, veth: r.veth! });
  return true;
}
