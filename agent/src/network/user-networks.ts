/**
 * User-defined networks (driver bridge) of one agent: a Linux bridge per network with its own
 * subnet, isolation rules (decided by user-network-rules.ts, applied by user-network-iptables.ts),
 * an embedded DNS server on the gateway, and the containers' extra interfaces. HostNetwork owns
 * one of these and calls init/restore/teardown; the container runner calls allocate →
 * (HostNetwork.attach) → plug, and release on exit.
 *
 * Calls are serialized, so address allocation never races and networks.json has one writer.
 */
import { createHash, randomBytes } from "node:crypto";
import { ConflictError, DomainError, InvalidError } from "@flotilla/core";
import { resolveQuery } from "./dns-names";
import { EmbeddedDns, type Upstream } from "./dns-server";
import { allocateAddress, inSubnet, intToIp, ipToInt, isIpv4, macForAddress, parseSubnet } from "./ipam";
import type { Iptables } from "./iptables";
import { deleteLink, ensureBridge, hostRoutes, plugVeth, sandboxNames, showLink, writeSysctl } from "./links";
import type { ChainNames } from "./nat-rules";
import { applyNetworkRules, redirectDns, syncNetworkRules } from "./user-network-iptables";
import { checkSubnet, chooseSubnet, DEFAULT_POOLS, type AddressPool, type NetworkPlan, type TakenPrefix } from "./user-network-spec";
import {
  loadUserState,
  removeUserState,
  saveUserState,
  type UserEndpointRecord,
  type UserNetworkRecord,
  type UserNetworksState,
} from "./user-network-state";

/** How the user networks of a HostNetwork are set up. */
export interface UserNetworksOptions {
  stateDir: string;
  /** The default bridge's name: bridge and veth names are derived from it, unique per agent. */
  hostBridge: string;
  hostSubnet: string;
  chains: ChainNames;
  pools?: readonly AddressPool[];
  /** Port of the DNS server on each gateway; default 53. */
  dnsPort?: number;
  /** Resolvers names are relayed to; default: the nameservers of the host's /etc/resolv.conf. */
  dnsUpstreams?: () => readonly Upstream[];
  log?: (msg: string) => void;
}

/** What a container asks of one network (from NetworkingConfig or network connect). */
export interface EndpointRequest {
  networkId: string;
  aliases: readonly string[];
  /** A fixed address (`--ip`); "" to take the next free one. */
  ipv4Address: string;
}

/** A container's interface on a user network, for inspect. */
export interface UserAttachment {
  networkId: string;
  networkName: string;
  ipAddress: string;
  prefixLen: number;
  gateway: string;
  macAddress: string;
  aliases: string[];
}

/** Docker's "network X not found" (404). */
export function networkNotFound(ref: string): DomainError {
  return new DomainError("not_found", `network ${ref} not found`, { network: ref });
}

export class UserNetworks {
  private state: UserNetworksState = { version: 1, networks: {} };
  private iptables?: Iptables;
  private readonly dns: EmbeddedDns;
  private tail: Promise<unknown> = Promise.resolve();

  constructor(private readonly opts: UserNetworksOptions) {
    this.dns = new EmbeddedDns({
      port: opts.dnsPort ?? 53,
      upstreams: opts.dnsUpstreams ?? (() => []),
      decide: (networkId, clientIp, qname) => resolveQuery(Object.values(this.state.networks), networkId, clientIp, qname),
      log: opts.log,
    });
  }

  /** Loads the networks and makes each one's bridge, rules and DNS listener exist (idempotent). */
  init(iptables: Iptables): Promise<void> {
    return this.serial(async () => {
      this.iptables = iptables;
      this.state = await loadUserState(this.opts.stateDir);
      for (const n of Object.values(this.state.networks)) await this.makeBridge(n);
      await syncNetworkRules(iptables, this.opts.chains, Object.values(this.state.networks));
    });
  }

  /** Every network, oldest first. */
  list(): UserNetworkRecord[] {
    return Object.values(this.state.networks).sort((a, b) => a.created.localeCompare(b.created));
  }

  /** A network by full id, name, or unique id prefix (Docker's order); undefined when none. */
  find(ref: string): UserNetworkRecord | undefined {
    const all = Object.values(this.state.networks);
    const hit = this.state.networks[ref] ?? all.find((n) => n.name === ref);
    if (hit) return hit;
    const byPrefix = ref.length >= 1 && /^[0-9a-f]+$/.test(ref) ? all.filter((n) => n.id.startsWith(ref)) : [];
    if (byPrefix.length > 1)
      throw new InvalidError(`network ${ref} is ambiguous (${byPrefix.length} matches found on id)`, { field: "network" });
    return byPrefix[0];
  }

  /** Like find(), but 404 when missing. */
  get(ref: string): UserNetworkRecord {
    const n = this.find(ref);
    if (!n) throw networkNotFound(ref);
    return n;
  }

  /**
   * Creates a network: checks the name is free and the subnet overlaps no other network, the
   * default bridge or a host route (or picks one from the pools), then the bridge, its rules
   * and its DNS listener. A failure undoes what was made.
   */
  create(plan: NetworkPlan): Promise<UserNetworkRecord> {
    return this.serial(async () => {
      if (Object.values(this.state.networks).some((n) => n.name === plan.name)) {
        throw new ConflictError(`network with name ${plan.name} already exists`, { field: "Name" });
      }
      const id = randomBytes(32).toString("hex");
      const bridge = `flu${createHash("sha256").update(`${this.opts.hostBridge}\0${id}`).digest("hex").slice(0, 8)}`;
      const taken = await this.takenPrefixes();
      let subnet = plan.subnet;
      if (subnet) checkSubnet(subnet, taken);
      else subnet = chooseSubnet(this.opts.pools ?? DEFAULT_POOLS, taken);
      const record: UserNetworkRecord = {
        id,
        name: plan.name,
        driver: "bridge",
        created: new Date().toISOString(),
        bridge,
        subnet: subnet.cidr,
        gateway: plan.gateway ?? intToIp(subnet.gateway),
        ...(plan.ipRange ? { ipRange: plan.ipRange.cidr } : {}),
        userSubnet: !!plan.subnet,
        internal: plan.internal,
        attachable: plan.attachable,
        labels: plan.labels,
        options: {},
        endpoints: {},
      };
      this.state.networks[id] = record;
      try {
        await saveUserState(this.opts.stateDir, this.state);
        await this.makeBridge(record);
        await applyNetworkRules(this.iptables!, this.opts.chains, record, "add");
      } catch (e) {
        await this.unmake(record).catch(() => undefined);
        delete this.state.networks[id];
        await saveUserState(this.opts.stateDir, this.state);
        throw e;
      }
      return record;
    });
  }

  /** Removes a network with no container attached (ConflictError otherwise). */
  remove(ref: string): Promise<UserNetworkRecord> {
    return this.serial(async () => {
      const n = this.get(ref);
      const users = Object.values(n.endpoints).map((e) => e.name);
      if (users.length)
        throw new ConflictError(`error while removing network: network ${n.name} id ${n.id} has active endpoints (${users.join(", ")})`);
      await this.unmake(n);
      delete this.state.networks[n.id];
      await saveUserState(this.opts.stateDir, this.state);
      return n;
    });
  }

  /**
   * Hands out an address on each requested network for a container about to start and records
   * pending endpoints (ifnames from `firstIndex`). Validates fixed addresses. Nothing is plugged yet.
   */
  allocate(containerId: string, name: string, requests: readonly EndpointRequest[], firstIndex: number): Promise<UserAttachment[]> {
    return this.serial(async () => {
      const made: UserEndpointRecord[] = [];
      try {
        let index = firstIndex;
        for (const r of requests) {
          const n = this.get(r.networkId);
          if (n.endpoints[containerId]) throw new ConflictError(`container ${name} is already attached to network ${n.name}`);
          const used = new Set(
            Object.values(this.state.networks).flatMap((x) => (x.endpoints[containerId] ? [x.endpoints[containerId].ifname] : [])),
          );
          while (used.has(`eth${index}`)) index++;
          const ip = this.pickAddress(n, r.ipv4Address);
          const e: UserEndpointRecord = {
            containerId,
            name,
            aliases: [...r.aliases],
            ipAddress: ip,
            macAddress: macForAddress(ip),
            veth: sandboxNames(n.bridge, containerId).veth,
            ifname: `eth${index++}`,
            netns: "",
            status: "pending",
          };
          n.endpoints[containerId] = e;
          n.lastAddress = ip;
          made.push(e);
        }
        await saveUserState(this.opts.stateDir, this.state);
      } catch (e) {
        for (const n of Object.values(this.state.networks)) if (made.includes(n.endpoints[containerId]!)) delete n.endpoints[containerId];
        throw e;
      }
      return made.map((e) => this.attachment(this.networkOf(e), e));
    });
  }

  /**
   * Plugs the container's pending endpoints into its namespace: a veth per network, the first
   * one with the default route when `primary`, and then the 127.0.0.11 redirect to the primary
   * network's DNS server. Returns every attachment of the container.
   */
  plug(containerId: string, netnsPath: string, primary: boolean): Promise<UserAttachment[]> {
    return this.serial(async () => {
      const netns = netnsPath.slice(netnsPath.lastIndexOf("/") + 1);
      const pending = this.endpointsOf(containerId).filter(([, e]) => e.status === "pending");
      for (const [n, e] of pending) {
        e.netns = netns;
        const first = primary && e.ifname === "eth0";
        await plugVeth({
          bridge: n.bridge,
          veth: e.veth,
          netns,
          ipAddress: e.ipAddress,
          prefixLen: Number(n.subnet.split("/")[1]),
          gateway: n.gateway,
          macAddress: e.macAddress,
          ifname: e.ifname,
          defaultRoute: first,
        });
        if (first) await redirectDns(this.iptables, netns, n.gateway, e.ipAddress, this.opts.dnsPort ?? 53);
        e.status = "ready";
      }
      await saveUserState(this.opts.stateDir, this.state);
      return this.attachments(containerId);
    });
  }

  /** Takes a container off one network (its interface goes) or, without a network, off all. */
  release(containerId: string, networkId?: string): Promise<void> {
    return this.serial(async () => {
      for (const [n, e] of this.endpointsOf(containerId)) {
        if (networkId && n.id !== networkId) continue;
        await deleteLink("veth", e.veth);
        delete n.endpoints[containerId];
      }
      await saveUserState(this.opts.stateDir, this.state);
    });
  }

  /** The container's interfaces on user networks. */
  attachments(containerId: string): UserAttachment[] {
    return this.endpointsOf(containerId)
      .filter(([, e]) => e.status === "ready")
      .map(([n, e]) => this.attachment(n, e));
  }

  /** After an agent restart: endpoints of containers not in `live` (or half-plugged) are removed. */
  restore(live: ReadonlySet<string>): Promise<void> {
    return this.serial(async () => {
      for (const n of Object.values(this.state.networks)) {
        for (const e of Object.values(n.endpoints)) {
          if (live.has(e.containerId) && e.status === "ready" && (await showLink(e.veth))) continue;
          await deleteLink("veth", e.veth);
          delete n.endpoints[e.containerId];
        }
      }
      await saveUserState(this.opts.stateDir, this.state);
    });
  }

  /** Stops the DNS listeners (agent shutdown); bridges, rules and interfaces stay for the next start. */
  close(): Promise<void> {
    return this.dns.closeAll();
  }

  /** Removes every bridge, interface and DNS listener and the state; the chains go with HostNetwork's. */
  teardown(): Promise<void> {
    return this.serial(async () => {
      const state = await loadUserState(this.opts.stateDir).catch(() => this.state);
      for (const n of [...Object.values(state.networks), ...Object.values(this.state.networks)]) await this.unmake(n, false);
      await this.dns.closeAll();
      await removeUserState(this.opts.stateDir);
      this.state = { version: 1, networks: {} };
    });
  }

  private attachment(n: UserNetworkRecord, e: UserEndpointRecord): UserAttachment {
    return {
      networkId: n.id,
      networkName: n.name,
      ipAddress: e.ipAddress,
      prefixLen: Number(n.subnet.split("/")[1]),
      gateway: n.gateway,
      macAddress: e.macAddress,
      aliases: [...e.aliases],
    };
  }

  private endpointsOf(containerId: string): [UserNetworkRecord, UserEndpointRecord][] {
    return this.list().flatMap((n) =>
      n.endpoints[containerId] ? [[n, n.endpoints[containerId]] as [UserNetworkRecord, UserEndpointRecord]] : [],
    );
  }

  private networkOf(e: UserEndpointRecord): UserNetworkRecord {
    return Object.values(this.state.networks).find((n) => n.endpoints[e.containerId] === e)!;
  }

  /** A fixed address (checked) or the next free one of the network's range. */
  private pickAddress(n: UserNetworkRecord, wanted: string): string {
    const subnet = parseSubnet(n.subnet);
    const taken = new Set([n.gateway, ...Object.values(n.endpoints).map((e) => e.ipAddress)]);
    if (!wanted) return allocateAddress(subnet, taken, n.lastAddress, n.ipRange ? parseSubnet(n.ipRange) : undefined);
    if (!n.userSubnet)
      throw new InvalidError("user specified IP address is supported only when connecting to networks with user configured subnets", {
        field: "IPAMConfig.IPv4Address",
      });
    if (!isIpv4(wanted)) throw new InvalidError(`invalid IPv4 address ${JSON.stringify(wanted)}`, { field: "IPAMConfig.IPv4Address" });
    const ip = ipToInt(wanted);
    if (!inSubnet(subnet, ip) || ip === subnet.network || ip === subnet.broadcast) {
      throw new InvalidError(`address ${wanted} is not a host address of network ${n.name} (${n.subnet})`, {
        field: "IPAMConfig.IPv4Address",
      });
    }
    if (taken.has(wanted))
      throw new ConflictError(`Address already in use: ${wanted} on network ${n.name}`, { field: "IPAMConfig.IPv4Address" });
    return wanted;
  }

  /** Other networks, the default bridge and the host's routes not through our own bridges. */
  private async takenPrefixes(): Promise<TakenPrefix[]> {
    const ours = new Set([this.opts.hostBridge, ...Object.values(this.state.networks).map((n) => n.bridge)]);
    const taken: TakenPrefix[] = Object.values(this.state.networks).map((n) => ({
      ...parseSubnet(n.subnet),
      what: `network ${n.name} (${n.subnet})`,
    }));
    taken.push({ ...parseSubnet(this.opts.hostSubnet), what: `the default bridge network (${this.opts.hostSubnet})` });
    for (const r of await hostRoutes())
      if (!r.dev || !ours.has(r.dev))
        taken.push({ network: r.network, prefixLen: r.prefixLen, what: `the host route ${r.dst}${r.dev ? ` dev ${r.dev}` : ""}` });
    return taken;
  }

  /** Bridge with the gateway address, route_localnet (guarded by P-NLO), DNS listener. */
  private async makeBridge(n: UserNetworkRecord): Promise<void> {
    await ensureBridge(n.bridge, parseSubnet(n.subnet), n.gateway);
    await writeSysctl(`net/ipv4/conf/${n.bridge}/route_localnet`, "1");
    try {
      await this.dns.listen(n.id, n.gateway);
    } catch (e) {
      // The network works without names; say why, once per start.
      this.opts.log?.(`network ${n.name}: embedded DNS on ${n.gateway}:${this.opts.dnsPort ?? 53} unavailable: ${(e as Error).message}`);
    }
  }

  /** Undoes a network in the kernel: DNS, rules, member veths, bridge. */
  private async unmake(n: UserNetworkRecord, rules = true): Promise<void> {
    await this.dns.close(n.id);
    if (rules && this.iptables) await applyNetworkRules(this.iptables, this.opts.chains, n, "delete");
    for (const e of Object.values(n.endpoints)) await deleteLink("veth", e.veth);
    await deleteLink("bridge", n.bridge);
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.tail.then(fn, fn);
    this.tail = next.catch(() => undefined);
    return next;
  }
}
