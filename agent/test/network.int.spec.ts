// The agent's host network (agent/src/network) against the real kernel: bridge, namespaces, veths,
// iptables NAT, published ports, restore after a restart. Needs root, iproute2 and iptables. Every
// address used is in 198.18.0.0/15, on a bridge and in namespaces this file creates; the only other
// traffic is to 127.0.0.1. The bridge, chains and namespaces have names of their own, so this file
// can run next to other suites (and to a real agent on flt0/FLOTILLA).
import type { ChildProcess } from "node:child_process";
import * as fs from "node:fs";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ConflictError, InvalidError } from "@flotilla/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { HostNetwork, NetworkCommandError, PortAllocatedError, type Endpoint } from "../src/network";
import {
  freeSubnets,
  httpGet,
  iptablesS,
  linkExists,
  netnsList,
  requestFromNetns,
  sh,
  shQuiet,
  startServer,
  udpRequest,
} from "./support/network-helpers";

const isRoot = process.getuid?.() === 0;
const BRIDGE = "fltnt0";
const PREFIX = "FLTNT";
// Two /24s no route uses yet: the containers', and the first /30 of the other for the "outside
// world" (egress, inbound from elsewhere): a namespace behind the host on a link of its own.
const [SUBNET, EXT_NET] = freeSubnets(2);
const net24 = (cidr: string) => cidr.slice(0, cidr.lastIndexOf(".0/"));
const GW = `${net24(SUBNET)}.1`;
const EXT_NS = "fltnt-ext";
const EXT_HOST_IF = "fltntx0";
const EXT_HOST_IP = `${net24(EXT_NET)}.1`;
const EXT_IP = `${net24(EXT_NET)}.2`;
const RUN = `nt${process.pid}`;
const id = (name: string) => `${RUN}-${name}`;
// Host ports in a range the kernel does not hand out as ephemeral ports (32768-60999).
const PORT_A = 18_000 + (process.pid % 1000) * 4;

let stateDir: string;
let net: HostNetwork;
let forwardingWas: string;
const servers: ChildProcess[] = [];
const listeners: Server[] = [];

function newNetwork(): HostNetwork {
  return new HostNetwork({ stateDir, bridgeName: BRIDGE, subnet: SUBNET, chainPrefix: PREFIX });
}

async function serve(e: Endpoint, port: number, name: string, protocol: "tcp" | "udp" = "tcp"): Promise<void> {
  servers.push(await startServer(e.netnsPath!, port, name, protocol));
}

/** Everything the kernel still holds for a container: namespace, veth, tagged rules. */
function traces(e: Pick<Endpoint, "containerId" | "hostInterface">): string[] {
  const out: string[] = [];
  if (netnsList().some((n) => n.includes(e.containerId))) out.push("netns");
  if (e.hostInterface && linkExists(e.hostInterface)) out.push("veth");
  const tag = `flotilla:${e.containerId}"`;
  if (iptablesS("nat").includes(tag) || iptablesS("filter").includes(tag)) out.push("rules");
  return out;
}

describe.skipIf(!isRoot)("HostNetwork", () => {
  beforeAll(async () => {
    stateDir = fs.mkdtempSync(join(tmpdir(), "flotilla-net-"));
    forwardingWas = fs.readFileSync("/proc/sys/net/ipv4/ip_forward", "utf8").trim();
    // Leftovers of an earlier, killed run of this file: its bridge and chains, and namespaces
    // named after a test process that is gone.
    await newNetwork().teardown();
    for (const ns of netnsList()) {
      const pid = /^flt-nt(\d+)-/.exec(ns)?.[1];
      if (pid && !fs.existsSync(`/proc/${pid}`)) shQuiet("ip", "netns", "del", ns);
    }
    shQuiet("ip", "netns", "del", EXT_NS);
    shQuiet("ip", "link", "del", EXT_HOST_IF);
    sh("ip", "netns", "add", EXT_NS);
    sh("ip", "link", "add", EXT_HOST_IF, "type", "veth", "peer", "name", "eth0", "netns", EXT_NS);
    sh("ip", "addr", "add", `${EXT_HOST_IP}/30`, "dev", EXT_HOST_IF);
    sh("ip", "link", "set", EXT_HOST_IF, "up");
    sh("ip", "-n", EXT_NS, "addr", "add", `${EXT_IP}/30`, "dev", "eth0");
    sh("ip", "-n", EXT_NS, "link", "set", "eth0", "up");
    sh("ip", "-n", EXT_NS, "link", "set", "lo", "up");
    // So the outside can try the containers' addresses directly (which must be dropped).
    sh("ip", "-n", EXT_NS, "route", "add", SUBNET, "via", EXT_HOST_IP);
    net = newNetwork();
    await net.init();
  });

  afterAll(async () => {
    for (const s of servers) s.kill("SIGKILL");
    for (const l of listeners) l.close();
    await newNetwork().teardown();
    shQuiet("ip", "link", "del", EXT_HOST_IF);
    shQuiet("ip", "netns", "del", EXT_NS);
    fs.writeFileSync("/proc/sys/net/ipv4/ip_forward", forwardingWas);
    fs.rmSync(stateDir, { recursive: true, force: true });
  });

  it("init() makes the bridge, sysctls and chains, and is idempotent", async () => {
    const again = await net.init();
    expect(again).toMatchObject({ bridge: BRIDGE, subnet: SUBNET, gateway: GW });
    expect(["nft", "legacy"]).toContain(again.iptablesBackend);
    expect(sh("ip", "-4", "-o", "addr", "show", "dev", BRIDGE)).toContain(`inet ${GW}/24`);
    expect(fs.readFileSync("/proc/sys/net/ipv4/ip_forward", "utf8").trim()).toBe("1");
    expect(fs.readFileSync(`/proc/sys/net/ipv4/conf/${BRIDGE}/route_localnet`, "utf8").trim()).toBe("1");
    const nat = iptablesS("nat");
    // Exactly one jump each, however many times init() ran.
    expect(nat.match(new RegExp(`-A PREROUTING -m addrtype --dst-type LOCAL -j ${PREFIX}-DNAT`, "g"))).toHaveLength(1);
    expect(nat.match(new RegExp(`-A POSTROUTING -j ${PREFIX}-POST`, "g"))).toHaveLength(1);
    expect(iptablesS("filter").match(new RegExp(`-A FORWARD -j ${PREFIX}-FWD`, "g"))).toHaveLength(1);
  });

  it("refuses a subnet that overlaps a host route", async () => {
    const other = new HostNetwork({ stateDir: join(stateDir, "other"), bridgeName: "fltnt9", subnet: EXT_NET, chainPrefix: "FLTNT9" });
    await expect(other.init()).rejects.toThrow(`subnet ${EXT_NET} overlaps the host route ${net24(EXT_NET)}.0/30 dev ${EXT_HOST_IF}`);
    expect(linkExists("fltnt9")).toBe(false);
  });

  let a: Endpoint;
  let b: Endpoint;

  it("attach(bridge) gives an address, a default route via the gateway and a working link", async () => {
    a = await net.attach(id("a"), { mode: "bridge", ports: [{ hostPort: PORT_A, containerPort: 80, protocol: "tcp" }] });
    expect(a).toMatchObject({ mode: "bridge", gateway: GW, prefixLen: 24, netnsPath: `/run/netns/flt-${id("a")}` });
    expect(a.ipAddress.startsWith(`${net24(SUBNET)}.`)).toBe(true);
    expect(a.ipAddress).not.toBe(GW);
    expect(a.macAddress).toMatch(/^02:42(:[0-9a-f]{2}){4}$/);
    expect(a.ports).toEqual([{ hostIp: "0.0.0.0", hostPort: PORT_A, containerPort: 80, protocol: "tcp" }]);
    expect(fs.existsSync(a.netnsPath!)).toBe(true);
    const ns = a.netnsPath!.split("/").pop()!;
    expect(sh("ip", "-n", ns, "route", "show", "default")).toContain(`default via ${GW} dev eth0`);
    expect(sh("ip", "-n", ns, "-4", "-o", "addr", "show", "dev", "eth0")).toContain(`inet ${a.ipAddress}/24`);
    expect(sh("ip", "-n", ns, "link", "show", "lo")).toContain("UP");
    expect(sh("ip", "link", "show", "dev", a.hostInterface!)).toContain(`master ${BRIDGE}`);
    expect(sh("ip", "netns", "exec", ns, "/bin/busybox", "ping", "-c", "1", "-W", "2", GW)).toContain("1 packets received");
  });

  it("a published port answers on 127.0.0.1 (DNAT from localhost) and on the gateway address", async () => {
    await serve(a, 80, "A");
    // The container sees the gateway as the client: 127.0.0.1 was masqueraded on the way out.
    expect(await httpGet(`http://127.0.0.1:${PORT_A}/`)).toBe(`A ${GW}`);
    expect(await httpGet(`http://${GW}:${PORT_A}/`)).toBe(`A ${GW}`);
    expect(await httpGet(`http://${a.ipAddress}:80/`)).toBe(`A ${GW}`);
  });

  it("from outside the host, published ports are reachable and nothing else is", async () => {
    // Forwarded (not masqueraded): the container sees the real client.
    expect(await requestFromNetns(EXT_NS, EXT_HOST_IP, PORT_A)).toBe(`A ${EXT_IP}`);
    // Routed straight to the container's address, not through a published port: dropped.
    await expect(requestFromNetns(EXT_NS, a.ipAddress, 80, "http", 1000)).rejects.toThrow(/timeout/);
  });

  it("hairpin: a container reaches its own published port through the host", async () => {
    expect(await requestFromNetns(a.netnsPath!, GW, PORT_A)).toBe(`A ${GW}`);
  });

  it("containers on the bridge reach each other directly and through published ports", async () => {
    b = await net.attach(id("b"), { ports: [] });
    expect(b.ipAddress).not.toBe(a.ipAddress);
    expect(await requestFromNetns(b.netnsPath!, a.ipAddress, 80)).toBe(`A ${b.ipAddress}`);
    expect(await requestFromNetns(b.netnsPath!, GW, PORT_A)).toMatch(/^A /);
  });

  it("containers reach the outside through NAT (a namespace behind the host)", async () => {
    servers.push(await startServer(EXT_NS, 8080, "EXT"));
    // The outside sees the host's address on its link, not the container's.
    expect(await requestFromNetns(b.netnsPath!, EXT_IP, 8080)).toBe(`EXT ${EXT_HOST_IP}`);
  });

  it("the bridge keeps its MAC as ports come and go, so containers' cached gateway keeps working", async () => {
    const bridgeMac = () => (JSON.parse(sh("ip", "-j", "link", "show", "dev", BRIDGE)) as { address: string }[])[0].address;
    const before = bridgeMac();
    // A port with the lowest MAC there is. A bridge left to the kernel takes the lowest of its
    // ports' MACs, and gives it up when that port goes: a container that learnt the gateway's
    // MAC meanwhile keeps sending to the old one (dropped) until it finds its ARP entry stale,
    // 20 to 50 s later. So d, plugged in while the port is there, must still reach the gateway
    // (egress through it, to the outside namespace) after the port is gone.
    sh("ip", "link", "add", "fltntlow", "type", "veth", "peer", "name", "fltntlow1");
    let d: Endpoint | undefined;
    try {
      sh("ip", "link", "set", "fltntlow", "address", "00:00:00:00:00:01");
      sh("ip", "link", "set", "fltntlow", "master", BRIDGE);
      sh("ip", "link", "set", "fltntlow", "up");
      d = await net.attach(id("d"), { ports: [] });
      expect(await requestFromNetns(d.netnsPath!, EXT_IP, 8080)).toBe(`EXT ${EXT_HOST_IP}`);
      shQuiet("ip", "link", "del", "fltntlow");
      expect(await requestFromNetns(d.netnsPath!, EXT_IP, 8080)).toBe(`EXT ${EXT_HOST_IP}`);
      expect(bridgeMac()).toBe(before);
    } finally {
      shQuiet("ip", "link", "del", "fltntlow");
      if (d) await net.detach(d.containerId);
    }
  });

  it("a clash fails with Docker's message and allocates nothing", async () => {
    const ours = () => netnsList().filter((n) => n.includes(RUN));
    const before = ours();
    const err = await net
      .attach(id("clash"), { ports: [{ hostPort: PORT_A, containerPort: 8080, protocol: "tcp" }] })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConflictError);
    expect(err).toBeInstanceOf(PortAllocatedError);
    expect((err as Error).message).toBe(`Bind for 0.0.0.0:${PORT_A} failed: port is already allocated`);
    // Same port on one address clashes with "any"; the other protocol does not.
    await expect(
      net.attach(id("clash"), { ports: [{ hostIp: "127.0.0.1", hostPort: PORT_A, containerPort: 80, protocol: "tcp" }] }),
    ).rejects.toThrow(`Bind for 127.0.0.1:${PORT_A} failed: port is already allocated`);
    expect(net.get(id("clash"))).toBeUndefined();
    expect(traces({ containerId: id("clash"), hostInterface: null })).toEqual([]);
    expect(ours()).toEqual(before);
    const state = JSON.parse(fs.readFileSync(join(stateDir, "network.json"), "utf8"));
    expect(Object.keys(state.endpoints)).toEqual([id("a"), id("b")]);
  });

  it("a port held by a host socket is refused too", async () => {
    const port = PORT_A + 1;
    const l = createServer();
    listeners.push(l);
    await new Promise<void>((r) => l.listen(port, "127.0.0.1", r));
    await expect(net.attach(id("sock"), { ports: [{ hostPort: port, containerPort: 80, protocol: "tcp" }] })).rejects.toThrow(
      `Bind for 0.0.0.0:${port} failed: port is already allocated`,
    );
    expect(traces({ containerId: id("sock"), hostInterface: null })).toEqual([]);
  });

  it("invalid ports and modes are InvalidError", async () => {
    const bad = [
      { hostPort: 70000, containerPort: 80, protocol: "tcp" },
      { hostPort: -1, containerPort: 80, protocol: "tcp" },
      { hostPort: 8000, containerPort: 0, protocol: "tcp" },
      { hostPort: 8000, containerPort: 80, protocol: "sctp" },
      { hostPort: 8000, containerPort: 80, protocol: "tcp", hostIp: "localhost" },
    ];
    for (const p of bad) {
      // eslint-disable-next-line @typescript-eslint/no-explicit-any
      await expect(net.attach(id("bad"), { ports: [p as any] })).rejects.toBeInstanceOf(InvalidError);
    }
    // eslint-disable-next-line @typescript-eslint/no-explicit-any
    await expect(net.attach(id("bad"), { mode: "overlay" as any })).rejects.toBeInstanceOf(InvalidError);
    await expect(net.attach("../etc")).rejects.toBeInstanceOf(InvalidError);
    expect(net.get(id("bad"))).toBeUndefined();
  });

  let c: Endpoint;

  it("host port 0 picks a free port; UDP ports work", async () => {
    c = await net.attach(id("c"), {
      ports: [
        { hostPort: 0, containerPort: 80, protocol: "tcp" },
        { hostPort: 0, containerPort: 5353, protocol: "udp" },
      ],
    });
    const [tcp, udp] = c.ports;
    expect(tcp.hostPort).toBeGreaterThan(0);
    expect(udp.hostPort).toBeGreaterThan(0);
    await serve(c, 80, "C");
    await serve(c, 5353, "CU", "udp");
    expect(await httpGet(`http://127.0.0.1:${tcp.hostPort}/`)).toBe(`C ${GW}`);
    expect(await udpRequest("127.0.0.1", udp.hostPort)).toBe(`CU ${GW}`);
    expect(net.inspect(id("c"), ["80/tcp", "9000/tcp"])).toMatchObject({
      IPAddress: c.ipAddress,
      Gateway: GW,
      MacAddress: c.macAddress,
      IPPrefixLen: 24,
      SandboxKey: c.netnsPath,
      Ports: {
        "80/tcp": [{ HostIp: "0.0.0.0", HostPort: String(tcp.hostPort) }],
        "5353/udp": [{ HostIp: "0.0.0.0", HostPort: String(udp.hostPort) }],
        "9000/tcp": null,
      },
      Networks: { bridge: { IPAddress: c.ipAddress, Gateway: GW, NetworkID: net.networkId } },
    });
  });

  it("a failure mid-attach undoes what was done and names the step", async () => {
    // Sabotage: remove our per-port ACCEPT chain, so the filter half of the port rules fails
    // after the namespace, veth and nat rules exist.
    sh("iptables", "-w", "-D", `${PREFIX}-FWD`, "-o", BRIDGE, "-j", `${PREFIX}-PORTS`);
    sh("iptables", "-w", "-F", `${PREFIX}-PORTS`);
    sh("iptables", "-w", "-X", `${PREFIX}-PORTS`);
    const err = await net
      .attach(id("fail"), { ports: [{ hostPort: PORT_A + 2, containerPort: 80, protocol: "tcp" }] })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NetworkCommandError);
    expect((err as Error).message).toMatch(/^iptables filter: iptables[a-z-]*-restore -w --noflush <<< ".*FLTNT-PORTS.*": exit \d+: /);
    expect(traces({ containerId: id("fail"), hostInterface: null })).toEqual([]);
    expect(sh("ip", "-o", "link", "show", "master", BRIDGE).split("\n").filter(Boolean)).toHaveLength(3);
    expect(net.get(id("fail"))).toBeUndefined();
    await net.init(); // repairs the chains
    // The port was released with the rest.
    const ok = await net.attach(id("fail"), { ports: [{ hostPort: PORT_A + 2, containerPort: 80, protocol: "tcp" }] });
    await net.detach(ok.containerId);
  });

  it("detach removes namespace, veth and rules, and frees address and port", async () => {
    await net.detach(id("c"));
    expect(traces(c)).toEqual([]);
    expect(net.get(id("c"))).toBeUndefined();
    await net.detach(id("c")); // idempotent
    const port = c.ports[0].hostPort;
    const again = await net.attach(id("c2"), { ports: [{ hostPort: port, containerPort: 80, protocol: "tcp" }] });
    await serve(again, 80, "C2");
    expect(await httpGet(`http://127.0.0.1:${port}/`)).toBe(`C2 ${GW}`);
    await net.detach(id("c2"));
  });

  it("mode none is a namespace with only lo; mode host has no namespace", async () => {
    const none = await net.attach(id("none"), { mode: "none", ports: [{ hostPort: 1, containerPort: 1, protocol: "tcp" }] });
    expect(none).toMatchObject({ mode: "none", ipAddress: "", gateway: "", prefixLen: 0, ports: [] });
    const links = sh("ip", "-n", none.netnsPath!.split("/").pop()!, "-o", "link").trim().split("\n");
    expect(links).toHaveLength(1);
    expect(links[0]).toMatch(/^1: lo: <LOOPBACK,UP/);
    const host = await net.attach(id("host"), { mode: "host" });
    expect(host).toMatchObject({ mode: "host", netnsPath: null, ipAddress: "", ports: [] });
    expect(net.inspect(id("host"))?.Networks).toHaveProperty("host");
    await net.detach(id("none"));
    await net.detach(id("host"));
    expect(traces(none)).toEqual([]);
  });

  it("restore() after a restart keeps live containers working, repairs them, collects the dead", async () => {
    const dead = await net.attach(id("dead"), { ports: [{ hostPort: PORT_A + 3, containerPort: 80, protocol: "tcp" }] });
    // Damage to repair: b's veth deleted behind our back (eth0 goes with it).
    sh("ip", "link", "del", b.hostInterface!);
    // A stray veth on our bridge that no record owns.
    sh("ip", "link", "add", "fltntstray", "type", "veth", "peer", "name", "fltntstray1");
    sh("ip", "link", "set", "fltntstray", "master", BRIDGE);

    // The old agent process dies: its sockets (held ports, DNS) go, the kernel state stays.
    await net.close();
    const restarted = newNetwork();
    await restarted.init();
    const result = await restarted.restore([id("a"), id("b")]);
    expect(result).toEqual({ adopted: [id("a")], repaired: [id("b")], collected: [id("dead")], lost: [] });
    net = restarted;

    expect(traces(dead)).toEqual([]);
    expect(linkExists("fltntstray")).toBe(false);
    expect(
      net
        .list()
        .map((e) => e.containerId)
        .sort(),
    ).toEqual([id("a"), id("b")]);
    expect(await httpGet(`http://127.0.0.1:${PORT_A}/`)).toBe(`A ${GW}`);
    expect(await requestFromNetns(b.netnsPath!, a.ipAddress, 80)).toBe(`A ${b.ipAddress}`);
    // The dead container's address and port are free again; a's are not.
    await expect(net.attach(id("e"), { ports: [{ hostPort: PORT_A, containerPort: 80, protocol: "tcp" }] })).rejects.toThrow(
      /already allocated/,
    );
    const e = await net.attach(id("e"), { ports: [{ hostPort: PORT_A + 3, containerPort: 80, protocol: "tcp" }] });
    expect([a.ipAddress, b.ipAddress]).not.toContain(e.ipAddress);
    await net.detach(id("e"));
  });

  it("a live container whose namespace vanished is reported lost and released", async () => {
    const gone = await net.attach(id("gone"), { ports: [] });
    sh("ip", "netns", "del", gone.netnsPath!.split("/").pop()!);
    await net.close();
    net = newNetwork();
    await net.init();
    const result = await net.restore([id("a"), id("b"), id("gone")]);
    expect(result.lost).toEqual([{ containerId: id("gone"), reason: expect.stringContaining("is gone") }]);
    expect(result.adopted.sort()).toEqual([id("a"), id("b")]);
    expect(traces(gone)).toEqual([]);
  });

  it("parallel attaches get distinct addresses and ports", async () => {
    const ids = ["p1", "p2", "p3", "p4", "p5"].map(id);
    const eps = await Promise.all(ids.map((i) => net.attach(i, { ports: [{ hostPort: 0, containerPort: 80, protocol: "tcp" }] })));
    const taken = [a.ipAddress, b.ipAddress];
    expect(new Set([...eps.map((e) => e.ipAddress), ...taken]).size).toBe(eps.length + taken.length);
    expect(new Set(eps.map((e) => e.ports[0].hostPort)).size).toBe(eps.length);
    await Promise.all(ids.map((i) => net.detach(i)));
    for (const e of eps) expect(traces(e)).toEqual([]);
  });

  it.each(["legacy", "nft"] as const)("works with the %s iptables backend and keeps using the one recorded", async (backend) => {
    // In a namespace of its own (see the script): a second bridge and chains, never the host's.
    const ns = `fltnt-bk-${backend}`;
    shQuiet("ip", "netns", "del", ns);
    sh("ip", "netns", "add", ns);
    try {
      const tsconfig = join(stateDir, "tsconfig.backend.json");
      const root = join(__dirname, "..", "..");
      fs.writeFileSync(
        tsconfig,
        JSON.stringify({ compilerOptions: { baseUrl: root, paths: { "@flotilla/core": ["libs/core/src/index.ts"] } } }),
      );
      const tsx = join(root, "node_modules", ".bin", "tsx");
      const out = sh("ip", "netns", "exec", ns, tsx, "--tsconfig", tsconfig, join(__dirname, "support", "network-backend-run.ts"), backend);
      const r = JSON.parse(out);
      expect(r.init.iptablesBackend).toBe(backend);
      expect(r.rulesOurs).toContain('--comment "flotilla:bk-1" -j DNAT --to-destination 198.19.78.2:80');
      expect(r.rulesOther).not.toContain("FLTBK");
      expect(r.again.iptablesBackend).toBe(backend);
      expect(r.restore).toEqual({ adopted: ["bk-1"], repaired: [], collected: [], lost: [] });
      expect(r.after).not.toContain("FLTBK");
      expect(r.mixedWarnings.join(" ")).toMatch(/legacy \(x_tables\) tables are also loaded/);
    } finally {
      shQuiet("ip", "netns", "del", ns);
    }
  });

  it("teardown() removes chains, namespaces, veths and the bridge", async () => {
    await net.teardown();
    expect(linkExists(BRIDGE)).toBe(false);
    expect(traces(a)).toEqual([]);
    expect(traces(b)).toEqual([]);
    expect(iptablesS("nat")).not.toContain(PREFIX);
    expect(iptablesS("filter")).not.toContain(PREFIX);
    expect(fs.existsSync(join(stateDir, "network.json"))).toBe(false);
    await net.teardown(); // idempotent
  });
});
