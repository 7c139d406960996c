/**
 * The containers' view of host networking. Bridge networking (veth into a host bridge, NAT,
 * published ports) belongs to agent/src/network; containers only need attach/detach. This
 * adapter type is what the container service codes against (tests and embedders may pass their
 * own); `loadBridgeNetwork` plugs in the network module. host and none modes need no module: the
 * shim joins the host namespace or makes a fresh one with only loopback.
 */
import { join } from "node:path";
import { HostNetwork } from "../network";
import type { NetworkModeName, PortBinding, PortProtocol, UserNetworkInfo } from "./container-types";

export interface NetworkPortMapping {
  hostIp?: string;
  hostPort: number;
  containerPort: number;
  protocol: PortProtocol;
}

/** What attach hands back: the netns to run the container in and its addresses. */
export interface NetworkAttachment {
  /** Path of the network namespace to join (`--netns PATH`); null for host mode. */
  netnsPath: string | null;
  ipAddress: string;
  gateway: string;
  macAddress: string;
  prefixLen: number;
  /** Published ports as bound (hostPort filled in when 0 was asked). */
  ports: NetworkPortMapping[];
}

/** User-defined networks, as far as containers use them (agent/src/network/user-networks.ts). */
export interface UserNetworksPort {
  /** A network by id, name or unique id prefix; undefined when none. */
  find(ref: string): { id: string; name: string } | undefined;
  /** Addresses on the networks for a container about to start (interfaces from eth`firstIndex`). */
  allocate(
    containerId: string,
    name: string,
    requests: ReadonlyArray<{ networkId: string; aliases: readonly string[]; ipv4Address: string }>,
    firstIndex: number,
  ): Promise<UserNetworkInfo[]>;
  /** Plugs what allocate() handed out into the namespace; `primary`: eth0 routes and resolves. */
  plug(containerId: string, netnsPath: string, primary: boolean): Promise<UserNetworkInfo[]>;
  /** Takes the container off one network, or off all. */
  release(containerId: string, networkId?: string): Promise<void>;
}

/**
 * Overlay networks (agent/src/overlay), as far as containers use them: the control plane's table
 * names them and gives each task its address; a container's create call carries them in
 * NetworkingConfig.EndpointsConfig beside its primary network.
 */
export interface OverlayNetworksPort {
  /**
   * A network of the node's table by id or name; one the table does not list yet makes the agent
   * fetch the table once, at once, before answering undefined.
   */
  lookup(ref: string): Promise<{ id: string; name: string; subnet: string } | undefined>;
  /** The version of the table in force (for messages). */
  readonly version: string | undefined;
  /** Why this node takes part in no overlay network, when its table says so (for messages). */
  readonly unavailable?: string | undefined;
  /** Plugs the container into the networks (interfaces from eth`firstIndex`); `dns`: 127.0.0.11 → our server. */
  plug(
    containerId: string,
    netnsPath: string,
    requests: ReadonlyArray<{ networkId: string; aliases: readonly string[]; ipv4Address: string }>,
    firstIndex: number,
    primary: { ip: string; dns: boolean },
  ): Promise<UserNetworkInfo[]>;
  /** Takes the container off one overlay network, or off all. */
  release(containerId: string, networkId?: string): Promise<void>;
}

/** The network module's interface, as far as containers use it. */
export interface NetworkPort {
  /** User-defined networks, when the module has them. */
  readonly user?: UserNetworksPort;
  /** Overlay networks, when the module has them. */
  readonly overlay?: OverlayNetworksPort;
  /** Creates the bridge, NAT rules and state dir; idempotent. */
  init(): Promise<unknown>;
  /** Gives the container a netns (bridge) and binds its ports. ConflictError when a port is taken. */
  attach(
    containerId: string,
    request: { mode: NetworkModeName; ports: NetworkPortMapping[]; ipAddress?: string },
  ): Promise<NetworkAttachment>;
  /** Releases everything attach made; idempotent. */
  detach(containerId: string): Promise<void>;
  /**
   * After an agent restart: keeps what live containers hold, releases the rest. `lost` names live
   * containers whose network could not be kept (their namespace is gone).
   */
  restore(liveIds: readonly string[]): Promise<{ lost?: ReadonlyArray<{ containerId: string; reason: string }> } | void>;
  /** Removes the bridge and rules (containers must be gone). */
  teardown(): Promise<void>;
  /** Stops in-process servers (DNS) at agent shutdown; the kernel state stays. */
  close?(): Promise<void>;
}

export interface BridgeNetworkOptions {
  root: string;
  subnet?: string;
  bridge?: string;
  chainPrefix?: string;
  /** Pools user networks take their subnets from (`--address-pool BASE/SIZE`). */
  addressPools?: ReadonlyArray<{ base: string; size: number }>;
}

/**
 * The host network module (agent/src/network) behind this interface, initialized. When the
 * host cannot do bridge networking (no iptables, no permission) the agent still runs: the
 * failure is logged and bridge containers get loopback only, with port publishing refused.
 */
export async function loadBridgeNetwork(options: BridgeNetworkOptions, log: (msg: string) => void = () => {}): Promise<NetworkPort | null> {
  const network = new HostNetwork({
    stateDir: join(options.root, "network"),
    ...(options.subnet ? { subnet: options.subnet } : {}),
    ...(options.bridge ? { bridgeName: options.bridge } : {}),
    ...(options.chainPrefix ? { chainPrefix: options.chainPrefix } : {}),
    ...(options.addressPools?.length ? { addressPools: options.addressPools } : {}),
    log,
  });
  try {
    const result = await network.init();
    for (const w of result.warnings) log(`network: ${w}`);
  } catch (err) {
    log(`bridge networking unavailable: ${(err as Error).message}`);
    return null;
  }
  return network;
}

/** Container port bindings → the network module's request. */
export function toPortMappings(ports: readonly PortBinding[]): NetworkPortMapping[] {
  return ports.map((p) => ({
    ...(p.hostIp ? { hostIp: p.hostIp } : {}),
    hostPort: p.hostPort,
    containerPort: p.containerPort,
    protocol: p.protocol,
  }));
}

/** The network module's answer → container port bindings. */
export function fromPortMappings(ports: readonly NetworkPortMapping[]): PortBinding[] {
  return ports.map((p) => ({ hostIp: p.hostIp ?? "", hostPort: p.hostPort, containerPort: p.containerPort, protocol: p.protocol }));
}
