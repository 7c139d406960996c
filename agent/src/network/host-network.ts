/**
 * The host's container network: one bridge (like docker0) with NAT, published ports as DNAT
 * rules (no userland proxy), and one network namespace + veth pair per bridge-mode container.
 * See README.md in this folder for the flow of attach() and the rules it installs.
 *
 * Calls are serialized: attach/detach/restore/teardown run one at a time, so address and port
 * allocation never race and the state file always has a single writer in this process.
 * One HostNetwork per state dir; two agents must not share one.
 */
import { ConflictError, InvalidError } from "@flotilla/core";
import { toNetworkSettings, hexId, type DockerNetworkSettings } from "./docker-shapes";
import { toEndpoint, type Endpoint } from "./endpoint";
import { Firewall } from "./firewall";
import { hostResolvers, type Upstream } from "./dns-server";
import { planEndpoint, plugEndpoint, replugEndpoint, unplugEndpoint } from "./endpoint-plumbing";
import { intToIp, isIpv4, parseSubnet, type Subnet } from "./ipam";
import { Iptables, type IptablesBackend } from "./iptables";
import { bridgeMembers, checkSubnetFree, deleteLink, ensureBridge, NETNS_DIR, netnsExists, showLink, writeSysctl } from "./links";
import { chainNames, MAX_PREFIX, type ChainNames } from "./nat-rules";
import { rehold, reservePorts, validatePorts, type PortReservation, type PortRequest } from "./ports";
import { loadState, removeState, saveState, type EndpointRecord, type NetworkMode, type NetworkState } from "./state-file";
import type { AddressPool } from "./user-network-spec";
import { UserNetworks } from "./user-networks";
import { OverlayNetworks } from "../overlay/overlay-networks";

/** How a HostNetwork is set up; everything but stateDir has a production default. */
export interface HostNetworkOptions {
  /** Directory for network.json (addresses and ports in use). */
  stateDir: string;
  /** Bridge device, at most 15 characters. Default "flt0". */
  bridgeName?: string;
  /** Container subnet, /8 to /30. Default "172.31.0.0/16". */
  subnet?: string;
  /** Prefix of our iptables chains (FLOTILLA-DNAT, …), at most 22 characters. Default "FLOTILLA". */
  chainPrefix?: string;
  /** iptables backend when nothing is recorded yet; default: whatever `iptables` is. */
  iptablesBackend?: IptablesBackend;
  /** Set net.ipv4.ip_forward=1 (containers' egress needs it). Default true. */
  enableIpForward?: boolean;
  /** Where user networks created without a subnet take theirs; default Docker's pools. */
  addressPools?: readonly AddressPool[];
  /** Port of the embedded DNS server on each user network's gateway; default 53. */
  dnsPort?: number;
  /** Resolvers the embedded DNS relays to; default: the host's /etc/resolv.conf nameservers. */
  dnsUpstreams?: readonly Upstream[];
  /** Diagnostics (a user network whose DNS could not listen). */
  log?: (msg: string) => void;
}

/** What attach() is asked for: the mode and, in bridge and user mode, the ports to publish. */
export interface AttachOptions {
  /** Default "bridge". "user": a namespace whose interfaces UserNetworks plugs in. */
  mode?: NetworkMode;
  /** Ports to publish; bridge and user mode only (ignored otherwise, as Docker does for host mode). */
  ports?: readonly PortRequest[];
  /** user mode: the container's address on its primary user network, where ports lead. */
  ipAddress?: string;
}

/** What init() set up, for the agent's start-up log. */
export interface InitResult {
  bridge: string;
  subnet: string;
  gateway: string;
  iptablesBackend: IptablesBackend;
  /** Things the agent should log (e.g. legacy iptables tables loaded next to nft ones). */
  warnings: string[];
}

/** What restore() did with each container it knew, by container id. */
export interface RestoreResult {
  /** Live containers whose namespace, veth and rules were all in place. */
  adopted: string[];
  /** Live containers whose veth or rules had to be recreated. */
  repaired: string[];
  /** Dead (or half-attached) containers whose network was removed. */
  collected: string[];
  /** Live containers whose namespace is gone: their network was released; restart them. */
  lost: { containerId: string; reason: string }[];
}

const CONTAINER_ID = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;
const MODES: readonly NetworkMode[] = ["bridge", "host", "none", "user"];

/**
 * The host network of one agent: `init()` at start, `restore(liveIds)` once containers are known,
 * `attach()` before starting a container and `detach()` once it is gone, `teardown()` to remove it all.
 */
export class HostNetwork {
  readonly bridge: string;
  readonly subnet: Subnet;
  readonly gateway: string;
  /** Docker's NetworkID of our "bridge" network: stable for a bridge name and subnet. */
  readonly networkId: string;
  private readonly firewallChains: ChainNames;
  private state?: NetworkState;
  private firewall?: Firewall;
  /** The user-defined networks beside the default bridge (docker network create). */
  readonly user: UserNetworks;
  /** Overlay networks of this node, from the control plane's table (agent/src/overlay). */
  readonly overlay: OverlayNetworks;
  private tail: Promise<unknown> = Promise.resolve();
  /** Sockets holding each container's published ports (ports.ts says why), by container id. */
  private readonly heldPorts = new Map<string, PortReservation>();

  constructor(private readonly opts: HostNetworkOptions) {
    this.bridge = opts.bridgeName ?? "flt0";
    if (!/^[A-Za-z0-9_.-]{1,15}$/.test(this.bridge))
      throw new InvalidError(`invalid bridge name ${JSON.stringify(this.bridge)}`, { field: "bridgeName" });
    const prefix = opts.chainPrefix ?? "FLOTILLA";
    if (!new RegExp(`^[A-Za-z0-9_-]{1,${MAX_PREFIX}}$`).test(prefix)) {
      throw new InvalidError(`invalid chain prefix ${JSON.stringify(prefix)}`, { field: "chainPrefix" });
    }
    this.subnet = parseSubnet(opts.subnet ?? "172.31.0.0/16");
    this.gateway = intToIp(this.subnet.gateway);
    this.firewallChains = chainNames(prefix);
    this.networkId = hexId("network", this.bridge, this.subnet.cidr);
    const upstreams = opts.dnsUpstreams;
    this.user = new UserNetworks({
      stateDir: opts.stateDir,
      hostBridge: this.bridge,
      hostSubnet: this.subnet.cidr,
      chains: this.firewallChains,
      ...(opts.addressPools ? { pools: opts.addressPools } : {}),
      ...(opts.dnsPort !== undefined ? { dnsPort: opts.dnsPort } : {}),
      dnsUpstreams: upstreams ? () => upstreams : hostResolvers,
      ...(opts.log ? { log: opts.log } : {}),
    });
    // Overlay containers keep the default bridge as eth0: their 127.0.0.11 goes to a DNS
    // server on its gateway, which knows them by their address there.
    this.overlay = new OverlayNetworks({
      stateDir: opts.stateDir,
      scope: this.bridge,
      forwardChain: `${prefix}-OVL`,
      dns: { address: this.gateway, port: opts.dnsPort ?? 53, upstreams: upstreams ? () => upstreams : hostResolvers },
      ...(opts.log ? { log: opts.log } : {}),
    });
  }

  /**
   * Idempotent set-up, to call at every agent start before restore() (and again at any time to
   * repair what someone removed): bridge with the gateway
   * address, ip_forward, route_localnet on the bridge, our chains and jumps. route_localnet is
   * what makes `curl 127.0.0.1:PORT` on the host reach a container without a userland proxy:
   * the OUTPUT DNAT sends a packet with source 127.0.0.1 out of the bridge, which the kernel
   * drops as martian unless the output device allows local-net routing (the flag is or-ed with
   * conf/all, so the bridge alone suffices). See nat-rules.ts for the guard that comes with it.
   */
  init(): Promise<InitResult> {
    return this.serial(async () => {
      const prefix = this.firewallChains.dnat.slice(0, -"-DNAT".length);
      let state = this.state ?? (await loadState(this.opts.stateDir));
      if (state && (state.bridge !== this.bridge || state.subnet !== this.subnet.cidr || state.chainPrefix !== prefix)) {
        if (Object.keys(state.endpoints).length > 0) {
          throw new ConflictError(
            `state: ${this.opts.stateDir} belongs to bridge ${state.bridge} ${state.subnet} (chains ${state.chainPrefix}) with containers attached; tear that down first`,
          );
        }
        state = undefined;
      }
      state ??= { version: 1, bridge: this.bridge, subnet: this.subnet.cidr, chainPrefix: prefix, endpoints: {} };
      const iptables = await Iptables.detect(state.iptables ?? this.opts.iptablesBackend);
      await checkSubnetFree(this.bridge, this.subnet);
      await ensureBridge(this.bridge, this.subnet);
      if (this.opts.enableIpForward ?? true) await writeSysctl("net/ipv4/ip_forward", "1");
      await writeSysctl(`net/ipv4/conf/${this.bridge}/route_localnet`, "1");
      const firewall = new Firewall(iptables, this.firewallChains, this.bridge, this.subnet.cidr);
      await firewall.install();
      // Called again on a running instance (someone flushed our chains): put the containers'
      // rules back too. At agent start restore() does this, knowing which containers live.
      if (this.state === state) await firewall.reconcile(Object.values(state.endpoints).filter((r) => r.status === "ready"));
      state.iptables = iptables.backend;
      await saveState(this.opts.stateDir, state);
      this.state = state;
      this.firewall = firewall;
      await this.user.init(iptables);
      // Overlay devices come from the last table and are the control plane's to fix: a failure
      // here (no vxlan module) costs the overlays, not the node's bridge networking.
      await this.overlay.init(iptables.command).catch((e: Error) => this.opts.log?.(`overlay networks: ${e.message}`));
      return {
        bridge: this.bridge,
        subnet: this.subnet.cidr,
        gateway: this.gateway,
        iptablesBackend: iptables.backend,
        warnings: [...iptables.warnings],
      };
    });
  }

  /**
   * Gives a container its network. bridge: namespace, veth on the bridge, an address, a default
   * route, published ports. none: a namespace with only lo. host: nothing (netnsPath null).
   * Throws InvalidError for bad ports, PortAllocatedError (a ConflictError with Docker's
   * "Bind for 0.0.0.0:8000 failed: port is already allocated") on a clash, ConflictError when
   * already attached, NetworkCommandError when a kernel step fails. A failed attach leaves nothing
   * behind: what it made is undone before the error is thrown.
   */
  async attach(containerId: string, options: AttachOptions = {}): Promise<Endpoint> {
    checkContainerId(containerId);
    const mode = options.mode ?? "bridge";
    if (!MODES.includes(mode))
      throw new InvalidError(`invalid network mode ${JSON.stringify(mode)}: must be bridge, host or none`, { field: "mode" });
    const requested = mode === "bridge" || mode === "user" ? validatePorts(options.ports ?? []) : [];
    if (mode === "user" && !isIpv4(options.ipAddress ?? ""))
      throw new InvalidError("user mode needs the container's address", { field: "ipAddress" });
    return this.serial(async () => {
      const { state, firewall } = this.ready();
      if (state.endpoints[containerId])
        throw new ConflictError(`container ${containerId} is already attached to ${mode === "bridge" ? this.bridge : mode} network`);
      const record = planEndpoint(this, state, containerId, mode, options.ipAddress);
      if (record.netns && (await netnsExists(record.netns))) throw new ConflictError(`netns: ${record.netns} already exists`);
      if (record.veth && (await showLink(record.veth))) throw new ConflictError(`veth: ${record.veth} already exists`);
      if (mode === "bridge" || mode === "user") {
        const taken = Object.values(state.endpoints).flatMap((e) => e.ports);
        const reservation = await reservePorts(requested, taken);
        record.ports = reservation.ports;
        this.heldPorts.set(containerId, reservation);
      }
      // Journal first: should the agent die mid-way, restore() finds the pending record and undoes it.
      const lastAddress = state.lastAddress;
      state.endpoints[containerId] = record;
      if (mode === "bridge") state.lastAddress = record.ipAddress;
      try {
        await saveState(this.opts.stateDir, state);
      } catch (e) {
        delete state.endpoints[containerId];
        state.lastAddress = lastAddress;
        await this.releasePorts(containerId);
        throw e;
      }
      try {
        await plugEndpoint(record, this.bridge, firewall);
      } catch (e) {
        try {
          await this.unplug(record, firewall);
        } catch (cleanup) {
          // Keep the pending record: restore() will try again. The first error stays the one
          // thrown (its type maps to the HTTP status); the cleanup failure is added to its text.
          if (e instanceof Error) e.message += ` (and undoing it failed: ${(cleanup as Error).message})`;
          throw e;
        }
        delete state.endpoints[containerId];
        await saveState(this.opts.stateDir, state);
        throw e;
      }
      record.status = "ready";
      await saveState(this.opts.stateDir, state);
      return toEndpoint(record, NETNS_DIR);
    });
  }

  /**
   * Takes a container off the network: its rules, veth and namespace; releases its address and
   * ports. Idempotent: an unknown container only has stray rules tagged with its id removed.
   */
  async detach(containerId: string): Promise<void> {
    checkContainerId(containerId);
    return this.serial(async () => {
      const { state, firewall } = this.ready();
      const record = state.endpoints[containerId];
      if (!record) {
        await firewall.removeTagged((id) => id === containerId);
        return;
      }
      await this.unplug(record, firewall);
      delete state.endpoints[containerId];
      await saveState(this.opts.stateDir, state);
    });
  }

  /**
   * After an agent restart (and init()): keeps the network of the `live` containers, repairing a
   * missing veth or rules, and removes everything else: records of dead containers, half-made
   * attaches, veths on our bridge and tagged rules that belong to no record.
   */
  restore(live: Iterable<string>): Promise<RestoreResult> {
    const alive = new Set(live);
    return this.serial(async () => {
      const { state, firewall } = this.ready();
      const result: RestoreResult = { adopted: [], repaired: [], collected: [], lost: [] };
      const drop = async (r: EndpointRecord) => {
        await this.unplug(r, firewall);
        delete state.endpoints[r.containerId];
      };
      const repaired = new Set<string>();
      for (const r of Object.values(state.endpoints)) {
        if (!alive.has(r.containerId) || r.status !== "ready") {
          await drop(r);
          result.collected.push(r.containerId);
        } else if (r.netns && !(await netnsExists(r.netns))) {
          await drop(r);
          result.lost.push({ containerId: r.containerId, reason: `netns ${r.netns} is gone` });
        } else if (r.mode === "bridge") {
          try {
            if (await replugEndpoint(r, this.bridge)) repaired.add(r.containerId);
          } catch (e) {
            await drop(r);
            result.lost.push({ containerId: r.containerId, reason: (e as Error).message });
          }
        }
      }
      const kept = Object.values(state.endpoints);
      for (const id of await firewall.reconcile(kept)) repaired.add(id);
      for (const r of kept) {
        if (this.heldPorts.has(r.containerId) || r.ports.length === 0) continue;
        const { reservation, lost } = await rehold(r.ports);
        this.heldPorts.set(r.containerId, reservation);
        if (lost.length > 0)
          this.opts.log?.(
            `container ${r.containerId}: another process bound ${lost.join(", ")} while no agent held it; our DNAT rule still takes new connections`,
          );
      }
      await this.user.restore(new Set(kept.map((r) => r.containerId)));
      await this.overlay.restore(new Set(kept.map((r) => r.containerId)));
      const ours = new Set(kept.map((r) => r.veth));
      for (const link of await bridgeMembers(this.bridge)) if (!ours.has(link)) await deleteLink("gc", link);
      for (const r of kept) (repaired.has(r.containerId) ? result.repaired : result.adopted).push(r.containerId);
      await saveState(this.opts.stateDir, state);
      return result;
    });
  }

  /** Every attached container. */
  list(): Endpoint[] {
    return Object.values(this.ready().state.endpoints)
      .filter((r) => r.status === "ready")
      .map((r) => toEndpoint(r, NETNS_DIR));
  }

  /** One container's endpoint, undefined when it is not attached. */
  get(containerId: string): Endpoint | undefined {
    const r = this.ready().state.endpoints[containerId];
    return r?.status === "ready" ? toEndpoint(r, NETNS_DIR) : undefined;
  }

  /**
   * Docker's NetworkSettings for container inspect; undefined when not attached. `exposedPorts`
   * (`"80/tcp"`) are listed with null bindings when not published.
   */
  inspect(containerId: string, exposedPorts: readonly string[] = []): DockerNetworkSettings | undefined {
    const e = this.get(containerId);
    return e && toNetworkSettings(e, this.networkId, exposedPorts);
  }

  /** Stops what runs in the agent's process (the user networks' DNS); the kernel state stays. */
  async close(): Promise<void> {
    for (const id of [...this.heldPorts.keys()]) await this.releasePorts(id);
    await this.user.close();
    await this.overlay.close();
  }

  /**
   * Removes everything this network made: every container's namespace and veth, our chains and
   * jumps, the bridge and the state file. For tests and `agent --cleanup`; works without init().
   * ip_forward is left on (other software may rely on it).
   */
  teardown(): Promise<void> {
    return this.serial(async () => {
      await this.user.teardown();
      await this.overlay.teardown();
      const state = this.state ?? (await loadState(this.opts.stateDir));
      const iptables = this.firewall?.iptables ?? (await Iptables.detect(state?.iptables ?? this.opts.iptablesBackend));
      const firewall = new Firewall(iptables, this.firewallChains, this.bridge, this.subnet.cidr);
      if (state?.bridge === this.bridge) {
        for (const r of Object.values(state.endpoints)) await this.unplug(r, null);
      }
      await firewall.uninstall();
      for (const link of await bridgeMembers(this.bridge)) await deleteLink("teardown", link);
      await deleteLink("bridge", this.bridge);
      await removeState(this.opts.stateDir);
      for (const id of [...this.heldPorts.keys()]) await this.releasePorts(id);
      this.state = undefined;
      this.firewall = undefined;
    });
  }

  /** Undoes an endpoint (endpoint-plumbing.ts) and lets its published ports go. */
  private async unplug(r: EndpointRecord, firewall: Firewall | null): Promise<void> {
    await unplugEndpoint(r, firewall);
    await this.releasePorts(r.containerId);
  }

  private async releasePorts(containerId: string): Promise<void> {
    const held = this.heldPorts.get(containerId);
    this.heldPorts.delete(containerId);
    await held?.release();
  }

  private ready(): { state: NetworkState; firewall: Firewall } {
    if (!this.state || !this.firewall) throw new Error(`network ${this.bridge}: init() has not been called`);
    return { state: this.state, firewall: this.firewall };
  }

  /** Runs fn after every earlier call has settled, whatever their outcome. */
  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.tail.then(fn, fn);
    this.tail = next.catch(() => undefined);
    return next;
  }
}

function checkContainerId(id: string): void {
  if (typeof id !== "string" || !CONTAINER_ID.test(id))
    throw new InvalidError(`invalid container id ${JSON.stringify(id)}`, { field: "containerId" });
}
