/**
 * The kernel side of overlay networks, through `ip`, `bridge` and iptables: a network's bridge
 * and VXLAN device, its forwarding entries, a container's veth on it, and the neighbour entries
 * and iptables chains inside the container's namespace. Every function is idempotent. `netns`
 * names the namespace the node's devices live in (the agent's own when undefined; tests run
 * several "nodes" as namespaces of one kernel).
 */
import { isMissing, run } from "../network/exec";
import {
  FLOOD_MAC,
  diffFdb,
  fdbBatch,
  type FdbEntry,
  VXLAN_PORT,
  containerRulesScript,
  missingJumps,
  type DnsRedirect,
  type VipPlan,
} from "./overlay-plan";

interface LinkJson {
  ifname: string;
  mtu?: number;
  master?: string;
  linkinfo?: { info_kind?: string; info_data?: { id?: number; local?: string; port?: number; learning?: boolean } };
  addr_info?: { family: string; local: string }[];
}

/** What plugContainer needs. */
export interface OverlayPlug {
  bridge: string;
  veth: string;
  /** The container's namespace name (`flt-…`, under /run/netns). */
  containerNetns: string;
  ifname: string;
  ip: string;
  prefixLen: number;
  mac: string;
  mtu: number;
}

export class OverlayKernel {
  constructor(
    private readonly opts: {
      /** The node's namespace; undefined: the agent's. */
      netns?: string;
      /** `iptables`, `iptables-nft` or `iptables-legacy`: the backend the network module uses. */
      iptables: string;
    },
  ) {}

  private ip(step: string, args: string[], input?: string): Promise<string> {
    return run(step, "ip", [...(this.opts.netns ? ["-n", this.opts.netns] : []), ...args], input === undefined ? {} : { input });
  }

  private bridgeCmd(step: string, args: string[], input?: string): Promise<string> {
    return run(step, "bridge", [...(this.opts.netns ? ["-n", this.opts.netns] : []), ...args], input === undefined ? {} : { input });
  }

  private async link(name: string): Promise<LinkJson | undefined> {
    try {
      return (JSON.parse(await this.ip("overlay link", ["-d", "-j", "addr", "show", "dev", name])) as LinkJson[])[0];
    } catch (e) {
      if (isMissing(e)) return undefined;
      throw e;
    }
  }

  /** The MTU of the link holding `address` (the underlay); 1500 when no link holds it. */
  async underlayMtu(address: string): Promise<number> {
    const links = JSON.parse(await this.ip("overlay underlay", ["-j", "addr", "show"])) as LinkJson[];
    return links.find((l) => l.addr_info?.some((a) => a.family === "inet" && a.local === address))?.mtu ?? 1500;
  }

  /**
   * A network's bridge and VXLAN device, up, with the MTU. A VXLAN device whose id, local address
   * or port differ from the table's (the node's address changed) is made again.
   */
  async ensureNetwork(names: { bridge: string; vxlan: string }, vni: number, nodeAddress: string, mtu: number): Promise<void> {
    const br = await this.link(names.bridge);
    if (!br) await this.ip("overlay bridge", ["link", "add", "name", names.bridge, "mtu", String(mtu), "type", "bridge"]);
    else if (br.linkinfo?.info_kind !== "bridge") throw new Error(`overlay: link ${names.bridge} exists and is not a bridge`);
    else if (br.mtu !== mtu) await this.ip("overlay bridge", ["link", "set", "dev", names.bridge, "mtu", String(mtu)]);
    let vx = await this.link(names.vxlan);
    const d = vx?.linkinfo?.info_data;
    if (vx && (vx.linkinfo?.info_kind !== "vxlan" || d?.id !== vni || d?.local !== nodeAddress || d?.port !== VXLAN_PORT)) {
      await this.deleteLink(names.vxlan);
      vx = undefined;
    }
    if (!vx) {
      await this.ip("overlay vxlan", [
        "link",
        "add",
        names.vxlan,
        "mtu",
        String(mtu),
        "type",
        "vxlan",
        "id",
        String(vni),
        "local",
        nodeAddress,
        "dstport",
        String(VXLAN_PORT),
        "nolearning",
      ]);
    } else if (vx.mtu !== mtu) await this.ip("overlay vxlan", ["link", "set", "dev", names.vxlan, "mtu", String(mtu)]);
    await this.ip("overlay vxlan", ["link", "set", "dev", names.vxlan, "master", names.bridge]);
    await this.ip("overlay vxlan", ["link", "set", "dev", names.vxlan, "up"]);
    await this.ip("overlay bridge", ["link", "set", "dev", names.bridge, "up"]);
  }

  /** The VXLAN entries with a remote end (flood and static ones). */
  async fdb(vxlan: string): Promise<FdbEntry[]> {
    const out = await this.bridgeCmd("overlay fdb", ["-j", "fdb", "show", "dev", vxlan]);
    return (JSON.parse(out || "[]") as { mac: string; dst?: string }[])
      .filter((e) => typeof e.dst === "string" && e.dst !== "")
      .map((e) => ({ mac: e.mac.toLowerCase(), dst: e.dst! }));
  }

  /** Makes the device's remote entries exactly `wanted`; returns how many changed. */
  async syncFdb(vxlan: string, wanted: readonly FdbEntry[]): Promise<number> {
    const diff = diffFdb(await this.fdb(vxlan), wanted);
    const lines = fdbBatch(vxlan, diff);
    if (lines.length) await this.bridgeCmd("overlay fdb", ["-batch", "-"], lines.join("\n") + "\n");
    return lines.length;
  }

  async deleteLink(name: string): Promise<void> {
    try {
      await this.ip("overlay delete", ["link", "del", "dev", name]);
    } catch (e) {
      if (!isMissing(e)) throw e;
    }
  }

  /** Names of the links enslaved to a bridge. */
  async bridgeMembers(bridge: string): Promise<string[]> {
    try {
      return (JSON.parse((await this.ip("overlay members", ["-j", "link", "show", "master", bridge])) || "[]") as LinkJson[]).map(
        (l) => l.ifname,
      );
    } catch (e) {
      if (isMissing(e)) return [];
      throw e;
    }
  }

  async linkExists(name: string): Promise<boolean> {
    return (await this.link(name)) !== undefined;
  }

  /** A network's devices gone (its container veths go with the bridge's members being deleted first). */
  async removeNetwork(names: { bridge: string; vxlan: string }): Promise<void> {
    await this.deleteLink(names.vxlan);
    await this.deleteLink(names.bridge);
  }

  /**
   * A veth from the node's bridge into the container's namespace: the peer born there as `ifname`
   * with the network's MAC, the address, up, the MTU on both ends; no route but the subnet's own
   * (the default route stays on eth0). A veth of that name left from before is replaced.
   */
  async plugContainer(p: OverlayPlug): Promise<void> {
    await this.deleteLink(p.veth);
    await this.ip("overlay veth", [
      "link",
      "add",
      p.veth,
      "mtu",
      String(p.mtu),
      "type",
      "veth",
      "peer",
      "name",
      p.ifname,
      "address",
      p.mac,
      "mtu",
      String(p.mtu),
      "netns",
      p.containerNetns,
    ]);
    await this.ip("overlay veth", ["link", "set", "dev", p.veth, "master", p.bridge]);
    await this.ip("overlay veth", ["link", "set", "dev", p.veth, "up"]);
    const inC = (args: string[]) => run("overlay container address", "ip", ["-n", p.containerNetns, ...args]);
    await inC(["addr", "replace", `${p.ip}/${p.prefixLen}`, "dev", p.ifname]);
    await inC(["link", "set", "dev", p.ifname, "up"]);
  }

  /** True when the container still has its interface (after an agent restart). */
  async containerHas(containerNetns: string, ifname: string): Promise<boolean> {
    try {
      await run("overlay container link", "ip", ["-n", containerNetns, "link", "show", "dev", ifname]);
      return true;
    } catch (e) {
      if (isMissing(e)) return false;
      throw e;
    }
  }

  /** Runs `ip -batch` lines inside a container's namespace (neighbour entries). */
  async containerBatch(containerNetns: string, lines: readonly string[]): Promise<void> {
    if (lines.length)
      await run("overlay neighbours", "ip", ["-n", containerNetns, "-force", "-batch", "-"], { input: lines.join("\n") + "\n" });
  }

  /** Rewrites our chains in a container's namespace whole (VIPs, DNS redirect), adding the jumps once. */
  async writeContainerRules(containerNetns: string, vips: readonly VipPlan[], dns: DnsRedirect | undefined): Promise<void> {
    const exec = (cmd: string, args: string[], input?: string) =>
      run("overlay vip rules", "ip", ["netns", "exec", containerNetns, cmd, ...args], input === undefined ? {} : { input });
    if (dns) await exec("sh", ["-c", "echo 1 > /proc/sys/net/ipv4/conf/all/route_localnet"]);
    const saved = await exec(`${this.opts.iptables}-save`, []);
    await exec(`${this.opts.iptables}-restore`, ["-w", "--noflush"], containerRulesScript(vips, dns, missingJumps(saved)));
  }

  /**
   * Bridged frames between a network's ports cross the host's FORWARD chain when br_netfilter is
   * loaded; a host whose FORWARD policy is DROP would cut the overlay. Our chain (rewritten whole)
   * accepts traffic that stays on an overlay bridge; it is jumped first from FORWARD.
   */
  async syncForward(chain: string, bridges: readonly string[]): Promise<void> {
    const exec = (cmd: string, args: string[], input?: string) =>
      this.opts.netns
        ? run("overlay forward", "ip", ["netns", "exec", this.opts.netns, cmd, ...args], input === undefined ? {} : { input })
        : run("overlay forward", cmd, args, input === undefined ? {} : { input });
    const have = await exec(this.opts.iptables, ["-w", "-t", "filter", "-S", "FORWARD"]);
    const jump = `-A FORWARD -j ${chain}`;
    const lines = ["*filter", `:${chain} - [0:0]`, ...bridges.map((b) => `-A ${chain} -i ${b} -o ${b} -j ACCEPT`)];
    if (!have.split("\n").some((l) => l.trim() === jump)) lines.push(`-I FORWARD 1 -j ${chain}`);
    lines.push("COMMIT", "");
    await exec(`${this.opts.iptables}-restore`, ["-w", "--noflush"], lines.join("\n"));
  }

  /** Removes the FORWARD jump and chain (teardown). */
  async removeForward(chain: string): Promise<void> {
    const exec = (cmd: string, args: string[]) =>
      this.opts.netns ? run("overlay forward", "ip", ["netns", "exec", this.opts.netns, cmd, ...args]) : run("overlay forward", cmd, args);
    for (const args of [
      ["-D", "FORWARD", "-j", chain],
      ["-F", chain],
      ["-X", chain],
    ]) {
      try {
        await exec(this.opts.iptables, ["-w", "-t", "filter", ...args]);
      } catch {
        // not there
      }
    }
  }
}

export { FLOOD_MAC };
