// Overlay networks on the real kernel: three "nodes" as network namespaces on a switch (a bridge in
// a namespace of its own, underlay 198.19.205.0/24), each running OverlayNetworks with `netns` set
// to the node (the same code the agent runs in its own namespace), and containers as namespaces
// plugged through OverlayNetworks.plug with busybox httpd in them. Covers: ping and HTTP across
// nodes over VXLAN, VIP balancing over backends on every node, a removed backend getting no new
// connection, a VIP without backends refusing, no way from network A to a container only on B, the
// MTU, and a restarted agent re-applying its table idempotently and removing stale entries.
// Overlay subnets 198.19.206.0/24 (A) and 198.19.207.0/24 (B). Run under the kernel lock.
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import * as fs from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { NodeNetworkTable, OverlayNetworkView, OverlayService } from "@flotilla/core";
import { overlayMac } from "@flotilla/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Iptables } from "../src/network/iptables";
import { OverlayNetworks, overlayLinkNames } from "../src/overlay";

const root = process.getuid?.() === 0;
const tag = process.pid.toString(36);
const SW = `ovsw-${tag}`;
const NODES = [1, 2, 3].map((i) => ({ ns: `ovn${i}-${tag}`, addr: `198.19.205.${i}` }));
const A = { id: "neta", name: "front", vni: 4201, subnet: "198.19.206.0/24", gateway: "198.19.206.1" };
const B = { id: "netb", name: "back", vni: 4202, subnet: "198.19.207.0/24", gateway: "198.19.207.1" };
const VIP = "198.19.206.100";
const SCOPE = `t${tag}`;

/** Containers: name, node index, network, address. */
const C = {
  w1: { node: 0, net: A, ip: "198.19.206.11" },
  w2: { node: 1, net: A, ip: "198.19.206.12" },
  w3: { node: 2, net: A, ip: "198.19.206.13" },
  client: { node: 0, net: A, ip: "198.19.206.21" },
  b1: { node: 1, net: B, ip: "198.19.207.11" },
  bx: { node: 0, net: B, ip: "198.19.207.12" },
} as const;
type Name = keyof typeof C;
const ALL = Object.keys(C) as Name[];
const nsOf = (n: Name) => `ovc-${tag}-${n}`;

function sh(cmd: string, ...args: string[]): { code: number; out: string } {
  const r = spawnSync(cmd, args, { encoding: "utf8", timeout: 20_000 });
  return { code: r.status ?? -1, out: `${r.stdout}${r.stderr}` };
}
function ok(cmd: string, ...args: string[]): string {
  const r = sh(cmd, ...args);
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(" ")}: ${r.out}`);
  return r.out;
}
const inC = (n: Name, ...args: string[]) => sh("ip", "netns", "exec", nsOf(n), ...args);
// curl: this Debian's busybox wget crashes (SIGSEGV) on every request.
const get = (from: Name, ip: string) => inC(from, "curl", "-sS", "-m", "3", `http://${ip}/`);

/** The table as node `i` sees it: networks it takes part in (a container of them runs there). */
function tableFor(i: number, version: string, backends: readonly Name[]): NodeNetworkTable {
  const networks: OverlayNetworkView[] = [];
  for (const net of [A, B]) {
    const members = (Object.keys(C) as Name[]).filter((n) => C[n].net === net);
    const nodes = [...new Set(members.map((n) => C[n].node))];
    if (!nodes.includes(i)) continue;
    const services: OverlayService[] =
      net === A
        ? [
            { id: "sweb", name: "web", endpointMode: "vip", vip: VIP, aliases: ["www"], backends: backends.map((b) => C[b].ip) },
            { id: "sdb", name: "db", endpointMode: "dnsrr", aliases: [], backends: [C.w1.ip, C.w2.ip] },
          ]
        : [];
    networks.push({
      ...net,
      peers: nodes.filter((x) => x !== i).map((x) => NODES[x]!.addr),
      endpoints: members.map((n) => ({
        taskId: `t-${n}`,
        serviceId: n.startsWith("w") ? "sweb" : "sother",
        ip: C[n].ip,
        mac: overlayMac(C[n].ip),
        nodeAddress: NODES[C[n].node]!.addr,
      })),
      services,
    });
  }
  return { version, nodeAddress: NODES[i]!.addr, networks };
}

describe.skipIf(!root)("overlay networks across three nodes on the real kernel", () => {
  const dir = fs.mkdtempSync(join(tmpdir(), "flotilla-overlay-"));
  const servers: ChildProcess[] = [];
  let agents: OverlayNetworks[] = [];
  let iptables: string;
  const make = (i: number) =>
    new OverlayNetworks({ stateDir: join(dir, `n${i}`), scope: SCOPE, iptables, forwardChain: "FLTOVT-OVL", netns: NODES[i]!.ns });

  beforeAll(async () => {
    iptables = (await Iptables.detect()).command;
    ok("ip", "netns", "add", SW);
    ok("ip", "-n", SW, "link", "add", "sw0", "type", "bridge");
    ok("ip", "-n", SW, "link", "set", "sw0", "up");
    NODES.forEach((n, i) => {
      ok("ip", "netns", "add", n.ns);
      ok("ip", "-n", n.ns, "link", "set", "lo", "up");
      ok("ip", "-n", n.ns, "link", "add", "u0", "type", "veth", "peer", "name", `p${i}`, "netns", SW);
      ok("ip", "-n", n.ns, "addr", "add", `${n.addr}/24`, "dev", "u0");
      ok("ip", "-n", n.ns, "link", "set", "u0", "up");
      ok("ip", "-n", SW, "link", "set", `p${i}`, "master", "sw0", "up");
    });
    agents = NODES.map((_, i) => make(i));
    for (const [i, a] of agents.entries()) {
      await a.init();
      await a.apply(tableFor(i, "v1", ["w1", "w2", "w3"]));
    }
    for (const n of Object.keys(C) as Name[]) {
      ok("ip", "netns", "add", nsOf(n));
      ok("ip", "-n", nsOf(n), "link", "set", "lo", "up");
      const web = join(dir, `www-${n}`);
      fs.mkdirSync(web);
      fs.writeFileSync(join(web, "index.html"), `${n}\n`);
      await agents[C[n].node]!.plug(
        `cid-${n}`,
        `/run/netns/${nsOf(n)}`,
        [{ networkId: C[n].net.id, aliases: [], ipv4Address: C[n].ip }],
        1,
        {
          ip: "",
          dns: false,
        },
      );
      const p = spawn("ip", ["netns", "exec", nsOf(n), "busybox", "httpd", "-f", "-p", "80", "-h", web], { stdio: "ignore" });
      servers.push(p);
    }
    // httpd is up once it answers locally.
    for (const n of Object.keys(C) as Name[]) {
      for (let t = 0; t < 50 && get(n, C[n].ip).code !== 0; t++) await new Promise((r) => setTimeout(r, 100));
    }
  }, 60_000);

  afterAll(async () => {
    for (const a of agents) await a.close();
    for (const p of servers) p.kill("SIGKILL");
    for (const n of ALL) sh("ip", "netns", "del", nsOf(n));
    for (const n of NODES) sh("ip", "netns", "del", n.ns);
    sh("ip", "netns", "del", SW);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it("a container reaches containers on other nodes by ping and HTTP over VXLAN, with the overlay MTU", () => {
    expect(inC("client", "busybox", "ping", "-c", "1", "-W", "2", C.w2.ip).code).toBe(0);
    expect(get("client", C.w2.ip).out.trim()).toBe("w2");
    expect(get("client", C.w3.ip).out.trim()).toBe("w3");
    expect(get("w3", C.client.ip).out.trim()).toBe("client");
    // The interface is eth1, with the table's MAC, no default route through it, MTU 1500 - 50.
    const link = JSON.parse(inC("client", "ip", "-j", "link", "show", "dev", "eth1").out) as Array<{ address: string; mtu: number }>;
    expect(link[0]).toMatchObject({ address: overlayMac(C.client.ip), mtu: 1450 });
    expect(inC("client", "ip", "route", "show", "default").out.trim()).toBe("");
    const vx = JSON.parse(ok("ip", "-n", NODES[0]!.ns, "-d", "-j", "link", "show", "dev", overlayLinkNames(SCOPE, A.id).vxlan)) as Array<{
      mtu: number;
      linkinfo: { info_data: { id: number; local: string; port: number; learning: boolean } };
    }>;
    expect(vx[0]!.mtu).toBe(1450);
    expect(vx[0]!.linkinfo.info_data).toMatchObject({ id: A.vni, local: NODES[0]!.addr, port: 4789, learning: false });
  });

  it("the VIP spreads new connections over the backends of every node, round robin", () => {
    const seen: Record<string, number> = {};
    for (let k = 0; k < 30; k++) {
      const r = get("client", VIP);
      expect(r.code).toBe(0);
      seen[r.out.trim()] = (seen[r.out.trim()] ?? 0) + 1;
    }
    // statistic nth is deterministic: each of three backends takes every third new connection.
    expect(seen).toEqual({ w1: 10, w2: 10, w3: 10 });
  });

  it("a backend removed from the table gets no new connection; a VIP without backends refuses", async () => {
    await agents[0]!.apply(tableFor(0, "v2", ["w1", "w2"]));
    const seen = new Set<string>();
    for (let k = 0; k < 12; k++) seen.add(get("client", VIP).out.trim());
    expect([...seen].sort()).toEqual(["w1", "w2"]);
    await agents[0]!.apply(tableFor(0, "v3", []));
    const refused = get("client", VIP);
    // curl exit 7, refused at once (a silently dropped SYN would be exit 28, a timeout).
    expect(refused.code).toBe(7);
    expect(refused.out).toMatch(/after \d+ ms/);
    await agents[0]!.apply(tableFor(0, "v4", ["w1", "w2", "w3"]));
    expect(get("client", VIP).code).toBe(0);
  });

  it("a container on network A cannot reach one only on network B; B's members reach each other across nodes", () => {
    expect(get("bx", C.b1.ip).out.trim()).toBe("b1");
    expect(inC("client", "busybox", "ping", "-c", "1", "-W", "1", C.b1.ip).code).not.toBe(0);
    expect(get("client", C.b1.ip).code).not.toBe(0);
    expect(get("b1", C.w2.ip).code).not.toBe(0);
  });

  it("knows remote endpoints without ARP: permanent neighbour entries in the container, static fdb entries per remote MAC", () => {
    const neigh = inC("client", "ip", "neigh", "show", "dev", "eth1", "nud", "permanent").out;
    expect(neigh).toContain(`${C.w2.ip} lladdr ${overlayMac(C.w2.ip)}`);
    expect(neigh).not.toContain(`${C.client.ip} `);
    const fdb = ok("bridge", "-n", NODES[0]!.ns, "fdb", "show", "dev", overlayLinkNames(SCOPE, A.id).vxlan);
    expect(fdb).toContain(`${overlayMac(C.w3.ip)} dst ${NODES[2]!.addr}`);
    expect(fdb).toContain(`00:00:00:00:00:00 dst ${NODES[1]!.addr}`);
    expect(fdb).not.toContain(overlayMac(C.w1.ip)); // local: the bridge learns it from its own port
  });

  it("a restarted agent re-applies its table idempotently and a newer table removes stale entries and networks", async () => {
    const ns = NODES[0]!.ns;
    const vxA = overlayLinkNames(SCOPE, A.id).vxlan;
    const before = ok("bridge", "-n", ns, "fdb", "show", "dev", vxA);
    await agents[0]!.close();
    agents[0] = make(0);
    await agents[0].init();
    // A veth on the bridge that no container record owns (a crash between plug and state write).
    ok("ip", "-n", ns, "link", "add", "ovcstray0", "type", "veth", "peer", "name", "ovcstray1");
    ok("ip", "-n", ns, "link", "set", "ovcstray0", "master", overlayLinkNames(SCOPE, A.id).bridge);
    await agents[0].restore(new Set(["cid-w1", "cid-client", "cid-bx"]));
    expect(sh("ip", "-n", ns, "link", "show", "dev", "ovcstray0").code).not.toBe(0);
    expect(ok("bridge", "-n", ns, "fdb", "show", "dev", vxA)).toBe(before);
    expect(get("client", C.w3.ip).out.trim()).toBe("w3");
    // Someone's stale entries: a flood entry to a node that left, and a MAC of a task that is gone.
    ok("bridge", "-n", ns, "fdb", "append", "00:00:00:00:00:00", "dev", vxA, "dst", "198.19.205.99");
    ok("bridge", "-n", ns, "fdb", "append", "02:42:c6:13:ce:63", "dev", vxA, "dst", NODES[1]!.addr);
    // Node 1 leaves network B (bx is gone there): its devices and bx's interface go.
    delete (C as Partial<typeof C>).bx;
    await agents[0].apply(tableFor(0, "v5", ["w1", "w2", "w3"]));
    const after = ok("bridge", "-n", ns, "fdb", "show", "dev", vxA);
    expect(after).not.toContain("198.19.205.99");
    expect(after).not.toContain("02:42:c6:13:ce:63");
    expect(after).toBe(before);
    const namesB = overlayLinkNames(SCOPE, B.id);
    expect(sh("ip", "-n", ns, "link", "show", "dev", namesB.vxlan).code).not.toBe(0);
    expect(sh("ip", "-n", ns, "link", "show", "dev", namesB.bridge).code).not.toBe(0);
    expect(sh("ip", "netns", "exec", `ovc-${tag}-bx`, "ip", "link", "show", "dev", "eth1").code).not.toBe(0);
    expect(agents[0].attachments("cid-bx")).toEqual([]);
    // The same table again changes nothing.
    await agents[0].apply(tableFor(0, "v6", ["w1", "w2", "w3"]));
    expect(ok("bridge", "-n", ns, "fdb", "show", "dev", vxA)).toBe(before);
    expect(get("client", VIP).code).toBe(0);
  });
});
