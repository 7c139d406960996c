// Overlay networks through a real agent's container path: the agent (host namespace, its own
// default bridge 198.19.208.0/24) gets a NodeNetworkTable as the control plane would send it, and
// task containers are created through the Engine API with the contract's EndpointsConfig entry.
// A second node is a namespace on a veth (underlay 198.19.209.0/25) running OverlayNetworks with a
// busybox httpd "container" of its own; the overlay is 198.19.209.128/25. Covers: the task gets
// eth1 at its address, reaches the other node over VXLAN, resolves SERVICE (the VIP, balanced in
// the kernel over both nodes), tasks.SERVICE and a dnsrr service through 127.0.0.11; docker
// network ls/inspect show the overlay read-only and refuse to create or remove one; a network the
// table does not list is fetched once before the create is refused; an agent restart restores
// everything from overlay.json; stop detaches; a table saying the node takes part in no network
// (no underlay address) removes the overlay and is named when a create is refused. Run under the
// kernel lock.
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import * as fs from "node:fs";
import { join } from "node:path";
import { overlayMac, type NodeNetworkTable, type OverlayNetworkView } from "@flotilla/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startRegistry, type TestRegistry } from "../../test/support/registry";
import { HostNetwork } from "../src/network";
import { OverlayNetworks, overlayLinkNames } from "../src/overlay";
import { docker, dockerOk, HAS_BRIDGE_TOOLS, HAS_DOCKER_CLI, IS_ROOT, rawRequest, startTestAgent, type TestAgent } from "./docker-helpers";

const tag = process.pid.toString(36);
const BRIDGE = `fltov${tag}`.slice(0, 15);
const REMOTE = `ovlr-${tag}`;
const REMOTE_C = `ovlrc-${tag}`;
const HOST_UL = `ovlu${tag}`.slice(0, 15);
const LOCAL_ADDR = "198.19.209.1";
const REMOTE_ADDR = "198.19.209.2";
const NET: Omit<OverlayNetworkView, "peers" | "endpoints" | "services"> = {
  id: "ovnet1",
  name: "ov",
  vni: 4301,
  subnet: "198.19.209.128/25",
  gateway: "198.19.209.129",
};
const IP = { w1: "198.19.209.130", w2: "198.19.209.131", client: "198.19.209.140", late: "198.19.209.150" };
const VIP = "198.19.209.200";

function sh(cmd: string, ...args: string[]): { code: number; out: string } {
  const r = spawnSync(cmd, args, { encoding: "utf8", timeout: 20_000 });
  return { code: r.status ?? -1, out: `${r.stdout}${r.stderr}` };
}
function ok(cmd: string, ...args: string[]): string {
  const r = sh(cmd, ...args);
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(" ")}: ${r.out}`);
  return r.out;
}

function table(version: string, self: string, extra: OverlayNetworkView[] = []): NodeNetworkTable {
  const ep = (taskId: string, ip: string, node: string) => ({
    taskId,
    serviceId: taskId.startsWith("w") ? "sweb" : "sc",
    ip,
    mac: overlayMac(ip),
    nodeAddress: node,
  });
  return {
    version,
    nodeAddress: self,
    networks: [
      {
        ...NET,
        peers: [self === LOCAL_ADDR ? REMOTE_ADDR : LOCAL_ADDR],
        endpoints: [ep("w1", IP.w1, LOCAL_ADDR), ep("w2", IP.w2, REMOTE_ADDR), ep("client", IP.client, LOCAL_ADDR)],
        services: [
          { id: "sweb", name: "web", endpointMode: "vip", vip: VIP, aliases: ["www"], backends: [IP.w1, IP.w2] },
          { id: "srr", name: "rr", endpointMode: "dnsrr", aliases: [], backends: [IP.w1, IP.w2] },
        ],
      },
      ...extra,
    ],
  };
}

/** The create call a task's dispatch makes: default bridge primary, the overlay in EndpointsConfig. */
function createBody(image: string, network: string, ip: string, cmd: string) {
  return JSON.stringify({
    Image: image,
    Cmd: ["sh", "-c", cmd],
    HostConfig: { NetworkMode: "bridge" },
    NetworkingConfig: { EndpointsConfig: { [network]: { NetworkID: "", IPAMConfig: { IPv4Address: ip }, Aliases: [] } } },
  });
}

describe.skipIf(!IS_ROOT || !HAS_DOCKER_CLI || !HAS_BRIDGE_TOOLS)("overlay networks through a real agent's containers", () => {
  let registry: TestRegistry;
  let agent: TestAgent;
  let network: HostNetwork;
  let remote: OverlayNetworks;
  let image: string;
  let env: NodeJS.ProcessEnv;
  let httpd: ChildProcess | undefined;
  const dir = fs.mkdtempSync("/tmp/flotilla-dovl-");
  let fetches = 0;
  const logs: string[] = [];

  // HTTP/1.0 by hand over nc: this busybox's wget crashes (SIGSEGV) on every request.
  const httpGet = (host: string) =>
    dockerOk(env, ["exec", "client", "sh", "-c", `printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 ${host} 80 | tail -n 1`]);
  const newNetwork = () =>
    new HostNetwork({
      stateDir: join(dir, "root", "network"),
      bridgeName: BRIDGE,
      subnet: "198.19.208.0/24",
      chainPrefix: "FLTOVL",
      dnsUpstreams: [],
      log: (m) => logs.push(m),
    });
  const create = async (name: string, network: string, ip: string, cmd: string) => {
    const r = await rawRequest(agent.socket, "POST", `/containers/create?name=${name}`, createBody(image, network, ip, cmd));
    return { status: r.status, body: JSON.parse(r.body) as { Id?: string; message?: string } };
  };

  beforeAll(async () => {
    // The other node: a namespace on a veth, with a "container" namespace running httpd as w2.
    ok("ip", "netns", "add", REMOTE);
    ok("ip", "link", "add", HOST_UL, "type", "veth", "peer", "name", "u0", "netns", REMOTE);
    ok("ip", "addr", "add", `${LOCAL_ADDR}/25`, "dev", HOST_UL);
    ok("ip", "link", "set", HOST_UL, "up");
    ok("ip", "-n", REMOTE, "addr", "add", `${REMOTE_ADDR}/25`, "dev", "u0");
    ok("ip", "-n", REMOTE, "link", "set", "u0", "up");
    ok("ip", "-n", REMOTE, "link", "set", "lo", "up");
    remote = new OverlayNetworks({ stateDir: join(dir, "remote"), scope: "r", forwardChain: "FLTOVR-OVL", netns: REMOTE });
    await remote.init();
    await remote.apply(table("v1", REMOTE_ADDR));
    ok("ip", "netns", "add", REMOTE_C);
    ok("ip", "-n", REMOTE_C, "link", "set", "lo", "up");
    await remote.plug("w2", `/run/netns/${REMOTE_C}`, [{ networkId: NET.id, aliases: [], ipv4Address: IP.w2 }], 1, { ip: "", dns: false });
    fs.mkdirSync(join(dir, "www"));
    fs.writeFileSync(join(dir, "www", "index.html"), "w2\n");
    httpd = spawn("ip", ["netns", "exec", REMOTE_C, "busybox", "httpd", "-f", "-p", "80", "-h", join(dir, "www")], { stdio: "ignore" });

    registry = await startRegistry();
    image = await registry.pushBusybox();
    network = newNetwork();
    agent = await startTestAgent({ dir, insecureRegistries: [registry.host], network });
    env = agent.env;
    await dockerOk(env, ["pull", image]);
    network.overlay.setFetcher(async () => {
      fetches++;
      // The control plane's table has moved on: a network "late" this node now takes part in.
      return table("v2", LOCAL_ADDR, [
        {
          id: "ovnet2",
          name: "late",
          vni: 4302,
          subnet: "198.19.209.144/28",
          gateway: "198.19.209.145",
          peers: [],
          endpoints: [],
          services: [],
        },
      ]);
    });
    await network.overlay.apply(table("v1", LOCAL_ADDR));
  }, 120_000);

  afterAll(async () => {
    httpd?.kill("SIGKILL");
    if (agent) {
      for (const c of agent.handle.containers.all()) await agent.handle.containers.remove(c.id, { force: true }).catch(() => {});
      await agent.handle.close();
      await network.teardown();
    }
    await remote?.teardown();
    await registry?.stop();
    sh("ip", "netns", "del", REMOTE_C);
    sh("ip", "netns", "del", REMOTE);
    sh("ip", "link", "del", HOST_UL);
    fs.rmSync(dir, { recursive: true, force: true });
    // Nothing of the overlay is left in the host's namespace.
    const names = overlayLinkNames(BRIDGE, NET.id);
    expect(sh("ip", "link", "show", "dev", names.vxlan).code).not.toBe(0);
    expect(sh("ip", "link", "show", "dev", names.bridge).code).not.toBe(0);
  });

  it("a task gets its overlay address on eth1, reaches the other node, and resolves and balances SERVICE through 127.0.0.11", async () => {
    const w1 = await create("w1", "ov", IP.w1, "mkdir -p /www && echo w1 > /www/index.html && exec httpd -f -p 80 -h /www");
    expect(w1.status).toBe(201);
    await dockerOk(env, ["start", "w1"]);
    const c = await create("client", NET.id, IP.client, "exec sleep 600");
    expect(c.status).toBe(201);
    await dockerOk(env, ["start", "client"]);
    const addr = await dockerOk(env, ["exec", "client", "ip", "-o", "-4", "addr", "show", "dev", "eth1"]);
    expect(addr).toContain(`${IP.client}/25`);
    expect(await dockerOk(env, ["exec", "client", "ip", "route", "show", "default"])).toContain("dev eth0");
    expect(await httpGet(IP.w2)).toBe("w2");
    expect(await dockerOk(env, ["exec", "client", "cat", "/etc/resolv.conf"])).toContain("nameserver 127.0.0.11");
    const seen = new Set<string>();
    for (let i = 0; i < 6; i++) seen.add(await httpGet("web"));
    expect([...seen].sort()).toEqual(["w1", "w2"]);
    const lookup = async (name: string) =>
      (await dockerOk(env, ["exec", "client", "nslookup", name, "127.0.0.11"]))
        .split("\n")
        .filter((l) => l.startsWith("Address") && !l.includes("#53") && !l.includes("127.0.0.11"))
        .map((l) => l.split(/\s+/).pop())
        .sort();
    expect(await lookup("web")).toEqual([VIP]);
    expect(await lookup("www")).toEqual([VIP]);
    expect(await lookup("tasks.web")).toEqual([IP.w1, IP.w2]);
    expect(await lookup("rr")).toEqual([IP.w1, IP.w2]);
    // Inspect lists the overlay among the container's networks.
    const [ins] = JSON.parse(await dockerOk(env, ["inspect", "client"])) as Array<{
      NetworkSettings: { Networks: Record<string, { IPAddress: string }> };
    }>;
    expect(ins!.NetworkSettings.Networks.ov!.IPAddress).toBe(IP.client);
  });

  it("docker network ls/inspect show the overlay read-only; create and rm are refused naming ctl", async () => {
    const rows = (await dockerOk(env, ["network", "ls", "--format", "{{.Name}} {{.Driver}} {{.Scope}}"])).split("\n");
    expect(rows).toContain("ov overlay swarm");
    const [ov] = JSON.parse(await dockerOk(env, ["network", "inspect", "ov"])) as Array<{ Containers: Record<string, { Name: string }> }>;
    expect(
      Object.values(ov!.Containers)
        .map((c) => c.Name)
        .sort(),
    ).toEqual(["client", "w1"]);
    const made = await docker(env, ["network", "create", "-d", "overlay", "mine"]);
    expect(made.code).not.toBe(0);
    expect(made.stderr).toContain("overlay networks are created with ctl network create");
    const rm = await docker(env, ["network", "rm", "ov"]);
    expect(rm.code).not.toBe(0);
    expect(rm.stderr).toContain("network ov is an overlay network");
  });

  it("a network the table does not list is fetched once; one the control plane does not know either is refused, nothing made", async () => {
    const before = fetches;
    const late = await create("late", "late", IP.late.replace(/\.150$/, ".150"), "exec sleep 600");
    // 198.19.209.150 is in late's subnet 198.19.209.144/28.
    expect(late.status).toBe(201);
    expect(fetches).toBe(before + 1);
    expect(network.overlay.version).toBe("v2");
    const nope = await create("nope", "nope", "198.19.209.160", "exec sleep 1");
    expect(nope.status).toBe(404);
    expect(nope.body.message).toBe("network nope not found (nor an overlay network of this node's table, version v2)");
    expect(fetches).toBe(before + 2);
    expect(agent.handle.containers.all().map((c) => c.name)).not.toContain("/nope");
    const noIp = await create("noip", "ov", "", "exec sleep 1");
    expect(noIp.status).toBe(400);
    expect(noIp.body.message).toContain("IPAMConfig.IPv4Address is required");
    const primary = await rawRequest(
      agent.socket,
      "POST",
      "/containers/create?name=prim",
      JSON.stringify({ Image: image, HostConfig: { NetworkMode: "ov" } }),
    );
    expect(primary.status).toBe(400);
    expect(primary.body).toContain("cannot be the container's primary network");
  });

  it("an agent restart restores the overlay from overlay.json: devices, the running task's interface, its VIP rules and names", async () => {
    const names = overlayLinkNames(BRIDGE, NET.id);
    // The entries the agent programs (`dst NODE`); the bridge's own learned entries on the VXLAN
    // port come and go with traffic and ageing, so they are left out of the comparison.
    const programmed = () =>
      ok("bridge", "fdb", "show", "dev", names.vxlan)
        .split("\n")
        .filter((l) => l.includes(" dst "))
        .sort();
    const fdbBefore = programmed();
    expect(fdbBefore.length).toBeGreaterThan(0);
    await agent.handle.close();
    // A stale entry someone left while no agent ran: the restored table removes it.
    ok("bridge", "fdb", "append", "00:00:00:00:00:00", "dev", names.vxlan, "dst", "198.19.209.99");
    network = newNetwork();
    agent = await startTestAgent({ dir, insecureRegistries: [registry.host], network });
    env = agent.env;
    expect(network.overlay.version).toBe("v2");
    expect(programmed()).toEqual(fdbBefore);
    const id = agent.handle.containers.all().find((c) => c.name === "/client")!.id;
    expect(network.overlay.attachments(id).map((a) => a.ipAddress)).toEqual([IP.client]);
    expect(await httpGet(IP.w2)).toBe("w2");
    const seen = new Set<string>();
    for (let i = 0; i < 4; i++) seen.add(await httpGet("web"));
    expect([...seen].sort()).toEqual(["w1", "w2"]);
  });

  it("stopping a task detaches it from the overlay", async () => {
    const id = agent.handle.containers.all().find((c) => c.name === "/client")!.id;
    expect(network.overlay.attachments(id)).toHaveLength(1);
    await dockerOk(env, ["stop", "-t", "1", "client"]);
    expect(network.overlay.attachments(id)).toEqual([]);
    expect(network.overlay.members(NET.id).map((m) => m.ip)).toEqual([IP.w1]);
  });

  it("a table saying the node takes part in no network removes the overlay, is logged once, and names why a create is refused", async () => {
    const why = "its engine URL unix:///var/run/docker.sock gives no underlay address";
    const none = { version: "v3", networks: [], unavailable: why };
    network.overlay.setFetcher(async () => none);
    const said = () => logs.filter((l) => l.includes("takes part in no overlay network")).length;
    await network.overlay.apply(none);
    await network.overlay.apply(none);
    expect(said()).toBe(1);
    expect(network.overlay.version).toBe("v3");
    expect(network.overlay.networks()).toEqual([]);
    expect(network.overlay.members(NET.id)).toEqual([]);
    expect(sh("ip", "link", "show", "dev", overlayLinkNames(BRIDGE, NET.id).vxlan).code).not.toBe(0);
    const late = await create("after", "ov", IP.late, "exec sleep 1");
    expect(late.status).toBe(404);
    expect(late.body.message).toBe(
      `network ov not found (nor an overlay network of this node's table, version v3: this node takes part in no overlay network: ${why})`,
    );
  });
});
