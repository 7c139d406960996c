/**
 * The overlay networks of one node: turns each NodeNetworkTable from the control plane into
 * kernel state (overlay-kernel.ts, decided by overlay-plan.ts), plugs containers into the
 * networks the table lists, keeps their VIP rules and neighbour entries in step with the table,
 * and answers their DNS names. A table is the whole truth for its version: networks, peers and
 * endpoints it no longer lists are removed. Calls are serialized; overlay.json has one writer.
 */
import type { NodeNetworkTable, OverlayNetworkView } from "@flotilla/core";
import { basename } from "node:path";
import { EmbeddedDns, type Upstream } from "../network/dns-server";
import type { DnsDecision } from "../network/dns-names";
import { planAttachments, toAttachment, type OverlayAttachment, type OverlayRequest } from "./overlay-attachments";
import { overlayAnswer } from "./overlay-dns";
import { OverlayKernel } from "./overlay-kernel";
import { desiredFdb, neighbourBatch, overlayLinkNames, overlayMtu, vipPlans, type DnsRedirect } from "./overlay-plan";
import {
  loadOverlayState,
  removeOverlayState,
  saveOverlayState,
  type OverlayAttachmentRecord,
  type OverlayContainerRecord,
  type OverlayState,
} from "./overlay-state";
import { checkNetworkTable } from "./overlay-table-check";

export interface OverlayNetworksOptions {
  stateDir: string;
  /** Names are hashed with this (the agent's default bridge), so agents sharing a kernel never collide. */
  scope: string;
  /** `iptables`, `iptables-nft` or `iptables-legacy` (the network module's backend); init() may give it later. */
  iptables?: string;
  /** Chain accepting bridged overlay frames in FORWARD (`<prefix>-OVL`). */
  forwardChain: string;
  /** The node's namespace (tests); undefined: the agent's. */
  netns?: string;
  /** Where the DNS server listens for overlay containers: the default bridge's gateway. Absent: no DNS. */
  dns?: { address: string; port: number; upstreams: () => readonly Upstream[] };
  log?: (msg: string) => void;
}

export class OverlayNetworks {
  private state: OverlayState = { version: 1, networks: [], containers: {} };
  private kernel: OverlayKernel;
  private readonly dns?: EmbeddedDns;
  private tail: Promise<unknown> = Promise.resolve();
  /** What was last written into each container (rules + neighbours), so an unchanged table writes nothing. */
  private readonly written = new Map<string, string>();
  private fetcher?: () => Promise<unknown>;
  private readonly log: (msg: string) => void;

  constructor(private readonly opts: OverlayNetworksOptions) {
    this.kernel = this.makeKernel(opts.iptables ?? "iptables");
    this.log = opts.log ?? (() => {});
    if (opts.dns) {
      this.dns = new EmbeddedDns({
        port: opts.dns.port,
        upstreams: opts.dns.upstreams,
        decide: (_net, clientIp, qname) => this.decide(clientIp, qname),
        log: opts.log,
      });
    }
  }

  /** How the agent asks the control plane for the current table (GET /api/v1/nodes/networks without version). */
  setFetcher(fetch: () => Promise<unknown>): void {
    this.fetcher = fetch;
  }

  /**
   * Loads overlay.json and applies the last table again (devices, entries, containers' rules):
   * idempotent. `iptables`: the command of the backend the network module detected.
   */
  init(iptables?: string): Promise<void> {
    return this.serial(async () => {
      if (iptables) this.kernel = this.makeKernel(iptables);
      this.state = await loadOverlayState(this.opts.stateDir);
      if (this.state.table) await this.applyChecked(this.state.table);
      await this.syncDns();
    });
  }

  /** The version of the table in force, undefined before the first. */
  get version(): string | undefined {
    return this.state.table?.version;
  }

  /** Why this node takes part in no overlay network, when the table in force says so. */
  get unavailable(): string | undefined {
    return this.state.table?.unavailable;
  }

  /** The networks of the table in force. */
  networks(): readonly OverlayNetworkView[] {
    return this.state.table?.networks ?? [];
  }

  /** A network of the table by id or name. */
  find(ref: string): OverlayNetworkView | undefined {
    return this.networks().find((n) => n.id === ref) ?? this.networks().find((n) => n.name === ref);
  }

  /**
   * Like find(), but a network the table does not list yet (the task's create call came before
   * the long poll delivered the table) makes the agent fetch the table once, at once, before
   * saying no.
   */
  async lookup(ref: string): Promise<OverlayNetworkView | undefined> {
    const hit = this.find(ref);
    if (hit || !this.fetcher) return hit;
    try {
      const table = await this.fetcher();
      if (table) await this.apply(table);
    } catch (e) {
      this.log(`overlay: fetching the network table for ${ref} failed: ${(e as Error).message}`);
    }
    return this.find(ref);
  }

  /** Applies a table (as received); returns what was left out of it. */
  apply(raw: unknown): Promise<{ errors: string[] }> {
    return this.serial(async () => {
      const { table, errors } = checkNetworkTable(raw);
      for (const e of errors) this.log(`overlay: ${e}`);
      // Said once per change: the table's version stays until the reason does.
      if (table.unavailable && table.unavailable !== this.state.table?.unavailable)
        this.log(`overlay: this node takes part in no overlay network: ${table.unavailable}`);
      await this.applyChecked(table);
      await this.syncDns();
      return { errors };
    });
  }

  /** Containers' overlay interfaces, for inspect. */
  attachments(containerId: string): OverlayAttachment[] {
    const c = this.state.containers[containerId];
    return (c?.attachments ?? []).map((a) => toAttachment(a));
  }

  /** Attached containers per network id (docker network inspect). */
  members(networkId: string): Array<{ containerId: string; ip: string; mac: string; prefixLen: number }> {
    return Object.values(this.state.containers).flatMap((c) =>
      c.attachments
        .filter((a) => a.networkId === networkId)
        .map((a) => ({ containerId: c.containerId, ip: a.ip, mac: a.mac, prefixLen: a.prefixLen })),
    );
  }

  /**
   * Plugs a container into overlay networks: a veth per network into its namespace (`eth<firstIndex>`…),
   * the address the control plane gave it, its neighbour entries and VIP rules. `primaryIp`: its
   * address on its primary network; `dns`: redirect 127.0.0.11 to our DNS server (default bridge).
   * A failure undoes this container's overlay interfaces and rethrows.
   */
  plug(
    containerId: string,
    netnsPath: string,
    requests: readonly OverlayRequest[],
    firstIndex: number,
    primary: { ip: string; dns: boolean },
  ): Promise<OverlayAttachment[]> {
    return this.serial(async () => {
      const table = this.state.table;
      const netns = basename(netnsPath);
      const record: OverlayContainerRecord = { containerId, primaryIp: primary.ip, dns: primary.dns && !!this.dns, attachments: [] };
      const planned = planAttachments(
        table,
        Object.values(this.state.containers),
        { scope: this.opts.scope, containerId, netns, firstIndex },
        requests,
      );
      if (!planned.length) return [];
      // Planned attachments are on networks of the table, and a table with networks has an address.
      const mtu = overlayMtu(await this.kernel.underlayMtu(table!.nodeAddress!));
      const prev = this.state.containers[containerId];
      this.state.containers[containerId] = { ...record, attachments: [...(prev?.attachments ?? []), ...planned] };
      try {
        for (const a of planned) {
          const { bridge } = overlayLinkNames(this.opts.scope, a.networkId);
          await this.kernel.plugContainer({
            bridge,
            veth: a.veth,
            containerNetns: netns,
            ifname: a.ifname,
            ip: a.ip,
            prefixLen: a.prefixLen,
            mac: a.mac,
            mtu,
          });
        }
        this.written.delete(containerId);
        await this.writeContainer(this.state.containers[containerId]!);
        await saveOverlayState(this.opts.stateDir, this.state);
        await this.syncDns();
      } catch (e) {
        for (const a of planned) await this.kernel.deleteLink(a.veth).catch(() => undefined);
        if (prev) this.state.containers[containerId] = prev;
        else delete this.state.containers[containerId];
        throw e;
      }
      return planned.map((a) => toAttachment(a));
    });
  }

  /** Takes a container off one overlay network or off all (stop, remove); idempotent. */
  release(containerId: string, networkId?: string): Promise<void> {
    return this.serial(async () => {
      const c = this.state.containers[containerId];
      if (!c) return;
      const going = c.attachments.filter((a) => !networkId || a.networkId === networkId);
      for (const a of going) await this.kernel.deleteLink(a.veth);
      c.attachments = c.attachments.filter((a) => !going.includes(a));
      this.written.delete(containerId);
      if (!c.attachments.length) delete this.state.containers[containerId];
      else await this.writeContainer(c).catch((e: Error) => this.log(`overlay: container ${containerId.slice(0, 12)}: ${e.message}`));
      await saveOverlayState(this.opts.stateDir, this.state);
      await this.syncDns();
    });
  }

  /** After an agent restart: containers not alive (or whose namespace lost the interface) are released. */
  restore(alive: ReadonlySet<string>): Promise<void> {
    return this.serial(async () => {
      for (const c of Object.values(this.state.containers)) {
        const keep: OverlayAttachmentRecord[] = [];
        for (const a of c.attachments) {
          if (alive.has(c.containerId) && (await this.kernel.containerHas(a.netns, a.ifname).catch(() => false))) keep.push(a);
          else await this.kernel.deleteLink(a.veth);
        }
        c.attachments = keep;
        this.written.delete(c.containerId);
        if (!keep.length) delete this.state.containers[c.containerId];
        else await this.writeContainer(c).catch((e: Error) => this.log(`overlay: container ${c.containerId.slice(0, 12)}: ${e.message}`));
      }
      // Veths on our bridges that no kept container owns (a crash between plug and the state write).
      const owned = new Set(Object.values(this.state.containers).flatMap((c) => c.attachments.map((a) => a.veth)));
      for (const id of this.state.networks) {
        const names = overlayLinkNames(this.opts.scope, id);
        for (const m of await this.kernel.bridgeMembers(names.bridge).catch(() => []))
          if (m !== names.vxlan && !owned.has(m)) await this.kernel.deleteLink(m);
      }
      await saveOverlayState(this.opts.stateDir, this.state);
      await this.syncDns();
    });
  }

  /** Stops the DNS listener (agent shutdown); the kernel keeps serving the last table. */
  async close(): Promise<void> {
    await this.dns?.closeAll();
  }

  /** Removes every overlay device and interface this agent made, and overlay.json. */
  teardown(): Promise<void> {
    return this.serial(async () => {
      const state = await loadOverlayState(this.opts.stateDir).catch(() => this.state);
      for (const s of [state, this.state]) {
        for (const c of Object.values(s.containers)) for (const a of c.attachments) await this.kernel.deleteLink(a.veth);
        for (const id of s.networks) await this.kernel.removeNetwork(overlayLinkNames(this.opts.scope, id));
      }
      await this.kernel.removeForward(this.opts.forwardChain);
      await this.dns?.closeAll();
      await removeOverlayState(this.opts.stateDir);
      this.state = { version: 1, networks: [], containers: {} };
      this.written.clear();
    });
  }

  /** The DNS decision for a client known by its primary address. */
  decide(clientIp: string, qname: string): DnsDecision {
    const c = Object.values(this.state.containers).find((x) => x.dns && x.primaryIp === clientIp);
    if (!c) return { kind: "refuse" };
    const addresses = overlayAnswer(this.networks(), new Set(c.attachments.map((a) => a.networkId)), qname);
    return addresses ? { kind: "answer", addresses } : { kind: "forward" };
  }

  /**
   * The DNS listener runs while a container needs it, and only then: an agent without overlay
   * containers holds no socket on the default bridge's gateway.
   */
  private async syncDns(): Promise<void> {
    const d = this.opts.dns;
    if (!d || !this.dns) return;
    const needed = Object.values(this.state.containers).some((c) => c.dns);
    if (!needed) return void (await this.dns.close("overlay"));
    if (this.dns.serves("overlay")) return;
    try {
      await this.dns.listen("overlay", d.address);
    } catch (e) {
      this.log(`overlay: embedded DNS on ${d.address}:${d.port} unavailable: ${(e as Error).message}`);
    }
  }

  private async applyChecked(table: NodeNetworkTable): Promise<void> {
    // No address comes only with no networks (overlay-table-check.ts): nothing to build then.
    const address = table.nodeAddress;
    const mtu = address !== undefined && table.networks.length ? overlayMtu(await this.kernel.underlayMtu(address)) : 0;
    const wanted = new Set(table.networks.map((n) => n.id));
    // Containers on networks that are gone lose those interfaces first, then the devices go.
    for (const c of Object.values(this.state.containers)) {
      const gone = c.attachments.filter((a) => !wanted.has(a.networkId));
      for (const a of gone) {
        await this.kernel.deleteLink(a.veth);
        this.log(`overlay: container ${c.containerId.slice(0, 12)} left network ${a.networkName} (not in table ${table.version})`);
      }
      if (gone.length) {
        c.attachments = c.attachments.filter((a) => !gone.includes(a));
        this.written.delete(c.containerId);
        if (!c.attachments.length) delete this.state.containers[c.containerId];
      }
    }
    for (const id of this.state.networks) if (!wanted.has(id)) await this.kernel.removeNetwork(overlayLinkNames(this.opts.scope, id));
    const made: string[] = [];
    for (const n of table.networks) {
      const names = overlayLinkNames(this.opts.scope, n.id);
      try {
        if (address === undefined) throw new Error("the table gives this node no address");
        await this.kernel.ensureNetwork(names, n.vni, address, mtu);
        await this.kernel.syncFdb(names.vxlan, desiredFdb(n, address));
        made.push(n.id);
      } catch (e) {
        this.log(`overlay: network ${n.name}: ${(e as Error).message}`);
      }
    }
    await this.kernel.syncForward(
      this.opts.forwardChain,
      made.map((id) => overlayLinkNames(this.opts.scope, id).bridge),
    );
    this.state.table = table;
    this.state.networks = made;
    for (const c of Object.values(this.state.containers))
      await this.writeContainer(c).catch((e: Error) => this.log(`overlay: container ${c.containerId.slice(0, 12)}: ${e.message}`));
    await saveOverlayState(this.opts.stateDir, this.state);
  }

  /** A container's VIP rules and neighbour entries for the table in force; nothing when unchanged. */
  private async writeContainer(c: OverlayContainerRecord): Promise<void> {
    const nets = c.attachments.map((a) => this.networks().find((n) => n.id === a.networkId)).filter((n): n is OverlayNetworkView => !!n);
    const vips = vipPlans(nets);
    const dns: DnsRedirect | undefined =
      c.dns && this.opts.dns ? { server: this.opts.dns.address, port: this.opts.dns.port, containerIp: c.primaryIp } : undefined;
    const neigh = c.attachments.flatMap((a) => {
      const n = nets.find((x) => x.id === a.networkId);
      return n ? neighbourBatch(n, a.ifname, a.ip) : [];
    });
    const signature = JSON.stringify({ vips, dns, neigh });
    if (this.written.get(c.containerId) === signature) return;
    const netns = c.attachments[0]!.netns;
    await this.kernel.writeContainerRules(netns, vips, dns);
    await this.kernel.containerBatch(netns, neigh);
    this.written.set(c.containerId, signature);
  }

  private makeKernel(iptables: string): OverlayKernel {
    return new OverlayKernel({ iptables, ...(this.opts.netns ? { netns: this.opts.netns } : {}) });
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.tail.then(fn, fn);
    this.tail = next.catch(() => undefined);
    return next;
  }
}
