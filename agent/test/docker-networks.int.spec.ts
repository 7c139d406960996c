// User-defined networks driven by the real docker CLI (28.x) and docker-compose 1.29 over the
// agent's unix socket, on the real kernel with the real shim: network create/ls/inspect/rm/prune,
// containers reaching each other by name and alias (the embedded DNS at 127.0.0.11) and never
// across networks, --ip, connect/disconnect, bad input refused with nothing made, and a compose
// project that gets its network and removes everything on down. Every address is in
// 198.18.0.0/15 on bridges this file makes; DNS forwarding only reaches a resolver this file runs
// on 127.0.0.1. Run under the kernel lock.
import { execFile, spawnSync } from "node:child_process";
import * as dgram from "node:dgram";
import * as fs from "node:fs";
import { join } from "node:path";
import packet from "dns-packet";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startRegistry, type TestRegistry } from "../../test/support/registry";
import { HostNetwork } from "../src/network";
import { iptablesS, linkExists, netnsList, sh } from "./support/network-helpers";
import {
  docker,
  dockerOk,
  freePort,
  freeSubnet,
  HAS_BRIDGE_TOOLS,
  HAS_DOCKER_CLI,
  IS_ROOT,
  startTestAgent,
  waitFor,
  type TestAgent,
} from "./docker-helpers";

const HAS_COMPOSE = spawnSync("sh", ["-c", "command -v docker-compose"]).status === 0;
const BRIDGE = "fltdnet0";
const PREFIX = "FLTDNET";
const OUTSIDE_NAME = "outside.n14.test";
const OUTSIDE_IP = "198.18.77.77";

let registry: TestRegistry;
let agent: TestAgent;
let network: HostNetwork;
let image: string;
let env: NodeJS.ProcessEnv;
let upstream: dgram.Socket;
let userSubnet: string;
const bridgesSeen = new Set<string>();

/** A resolver on 127.0.0.1 that knows one name, the only place the embedded DNS may forward to. */
async function startUpstream(): Promise<dgram.Socket> {
  const sock = dgram.createSocket("udp4");
  sock.on("message", (msg, rinfo) => {
    const q = packet.decode(msg);
    const question = q.questions![0]!;
    const known = question.name.toLowerCase() === OUTSIDE_NAME && question.type === "A";
    const reply = packet.encode({
      type: "response",
      id: q.id,
      flags: packet.RECURSION_AVAILABLE | (known ? 0 : 3),
      questions: [question],
      answers: known ? [{ type: "A", name: question.name, class: "IN", ttl: 5, data: OUTSIDE_IP }] : [],
    });
    sock.send(reply, rinfo.port, rinfo.address);
  });
  await new Promise<void>((r) => sock.bind(0, "127.0.0.1", () => r()));
  return sock;
}

/** `docker run --rm --network NET busybox sh -c CMD` → its result. */
function runOn(net: string, cmd: string, extra: string[] = []) {
  return docker(env, ["run", "--rm", "--network", net, ...extra, image, "sh", "-c", cmd]);
}

function compose(args: string[], cwd: string) {
  return new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
    execFile(
      "docker-compose",
      args,
      { cwd, env: { PATH: process.env.PATH, HOME: cwd, ...env }, timeout: 120_000 },
      (err, stdout, stderr) => {
        resolve({ code: err ? ((err as { code?: number }).code ?? -1) : 0, stdout: String(stdout), stderr: String(stderr) });
      },
    );
  });
}

let bridgeSubnet: string;

function newNetwork(root: string): HostNetwork {
  return new HostNetwork({
    stateDir: join(root, "network"),
    bridgeName: BRIDGE,
    subnet: bridgeSubnet,
    chainPrefix: PREFIX,
    addressPools: [{ base: "198.18.180.0/22", size: 24 }],
    dnsUpstreams: [{ host: "127.0.0.1", port: (upstream.address() as { port: number }).port }],
  });
}

function rememberBridges(): void {
  for (const n of network.user.list()) bridgesSeen.add(n.bridge);
}

describe.skipIf(!IS_ROOT || !HAS_DOCKER_CLI || !HAS_BRIDGE_TOOLS)("user-defined networks through the docker CLI", () => {
  beforeAll(async () => {
    upstream = await startUpstream();
    registry = await startRegistry();
    image = await registry.pushBusybox();
    const dir = fs.mkdtempSync("/tmp/flotilla-dnet-");
    userSubnet = freeSubnet(160);
    bridgeSubnet = freeSubnet(140);
    network = newNetwork(join(dir, "root"));
    agent = await startTestAgent({ dir, insecureRegistries: [registry.host], network });
    env = agent.env;
    await dockerOk(env, ["pull", image]);
  });

  afterAll(async () => {
    if (agent) {
      for (const c of agent.handle.containers.all()) await agent.handle.containers.remove(c.id, { force: true }).catch(() => {});
      rememberBridges();
      await agent.handle.close();
      await network.teardown();
      fs.rmSync(agent.dir, { recursive: true, force: true });
    }
    upstream?.close();
    await registry?.stop();
    // Nothing of ours is left in the kernel.
    for (const b of bridgesSeen) expect(linkExists(b), b).toBe(false);
    expect(iptablesS("filter")).not.toContain(`${PREFIX}-`);
    expect(iptablesS("nat")).not.toContain(`${PREFIX}-`);
  });

  it("creates, lists and inspects networks; refuses an overlapping subnet, a taken name and the overlay driver", async () => {
    const gw = userSubnet.replace(/0\/24$/, "254");
    const range = userSubnet.replace(/0\/24$/, "128/25");
    const id = await dockerOk(env, [
      "network",
      "create",
      "--subnet",
      userSubnet,
      "--gateway",
      gw,
      "--ip-range",
      range,
      "--label",
      "team=n14",
      "front",
    ]);
    expect(id).toMatch(/^[0-9a-f]{64}$/);
    await dockerOk(env, ["network", "create", "back"]);
    const rows = (await dockerOk(env, ["network", "ls", "--format", "{{.Name}} {{.Driver}} {{.Scope}}"])).split("\n");
    expect(rows).toEqual(
      expect.arrayContaining(["bridge bridge local", "host host local", "none null local", "front bridge local", "back bridge local"]),
    );
    const [front] = JSON.parse(await dockerOk(env, ["network", "inspect", "front"]));
    expect(front).toMatchObject({ Name: "front", Id: id, Driver: "bridge", Internal: false, Labels: { team: "n14" } });
    expect(front.IPAM.Config).toEqual([{ Subnet: userSubnet, Gateway: gw, IPRange: range }]);
    const [back] = JSON.parse(await dockerOk(env, ["network", "inspect", "back"]));
    expect(back.IPAM.Config[0].Subnet).toMatch(/^198\.18\.18[0-3]\.0\/24$/);
    rememberBridges();
    for (const n of network.user.list()) expect(linkExists(n.bridge)).toBe(true);

    const overlap = await docker(env, ["network", "create", "--subnet", userSubnet, "again"]);
    expect(overlap.code).not.toBe(0);
    expect(overlap.stderr).toContain(`subnet ${userSubnet} overlaps network front`);
    const dup = await docker(env, ["network", "create", "front"]);
    expect(dup.stderr).toContain("network with name front already exists");
    const overlay = await docker(env, ["network", "create", "--driver", "overlay", "ov"]);
    expect(overlay.stderr).toContain("overlay networks are created with ctl network create");
    const hostBits = await docker(env, ["network", "create", "--subnet", "198.18.190.1/24", "bits"]);
    expect(hostBits.stderr).toContain("host bits set");
    const names = await dockerOk(env, ["network", "ls", "--format", "{{.Name}}"]);
    for (const n of ["again", "ov", "bits"]) expect(names.split("\n")).not.toContain(n);
  });

  it("containers on a network reach each other by name and alias, and nothing across networks", async () => {
    await dockerOk(env, ["run", "-d", "--name", "a1", "--network", "front", "--network-alias", "alpha", image, "sleep", "600"]);
    await dockerOk(env, ["run", "-d", "--name", "b1", "--network", "back", image, "sleep", "600"]);
    const byName = await runOn("front", "ping -c 1 -W 5 a1 && ping -c 1 -W 5 alpha && cat /etc/resolv.conf");
    expect(byName.code, byName.stderr + byName.stdout).toBe(0);
    expect(byName.stdout).toContain("nameserver 127.0.0.11");
    const a1 = JSON.parse(await dockerOk(env, ["inspect", "a1"]))[0];
    const a1Ip = a1.NetworkSettings.Networks.front.IPAddress;
    // From the --ip-range, never the gateway.
    expect(a1Ip).toMatch(new RegExp(`^${userSubnet.replace(/0\/24$/, "").replaceAll(".", "\\.")}(1[2-9]\\d|2[0-4]\\d|25[0-3])$`));
    expect(a1.NetworkSettings.Networks.front.Aliases).toEqual(["alpha"]);
    expect(a1.NetworkSettings.Networks.front.DNSNames).toEqual(expect.arrayContaining(["a1", "alpha", a1.Id.slice(0, 12)]));
    const b1Ip = JSON.parse(await dockerOk(env, ["inspect", "b1"]))[0].NetworkSettings.Networks.back.IPAddress;

    // Across networks: no name, and no packets even by address.
    const noName = await runOn("front", "nslookup b1 127.0.0.11");
    expect(noName.code).not.toBe(0);
    const noRoute = await runOn("front", `ping -c 2 -W 2 ${b1Ip}`);
    expect(noRoute.code).not.toBe(0);
    const reverse = await runOn("back", `ping -c 2 -W 2 ${a1Ip}`);
    expect(reverse.code).not.toBe(0);
    // Dropped by the isolation rules (not lost elsewhere): the DROP into each bridge counted them.
    const counters = sh("iptables", "-w", "-t", "filter", "-L", `${PREFIX}-NIN`, "-v", "-x", "-n");
    for (const n of network.user.list()) {
      // columns: pkts bytes target prot opt in out source destination
      const drop = counters
        .split("\n")
        .map((l) => l.trim().split(/\s+/))
        .find((c) => c[2] === "DROP" && c[5] === "*" && c[6] === n.bridge);
      expect(Number(drop?.[0]), `${n.name}: ${counters}`).toBeGreaterThan(0);
    }
    // Names the networks do not know go to the host's resolver (here: ours on loopback).
    const outside = await runOn("front", `nslookup ${OUTSIDE_NAME}`);
    expect(outside.stdout).toContain(OUTSIDE_IP);

    const inspect = JSON.parse(await dockerOk(env, ["network", "inspect", "front"]))[0];
    expect(Object.values(inspect.Containers).map((c) => (c as { Name: string }).Name)).toEqual(["a1"]);
  });

  it("--ip takes a fixed address; a taken or foreign one is refused", async () => {
    const fixed = userSubnet.replace(/0\/24$/, "50");
    const r = await runOn("front", "hostname -i", ["--ip", fixed]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.trim()).toBe(fixed);
    const foreign = await runOn("front", "true", ["--ip", "198.18.199.9"]);
    expect(foreign.code).not.toBe(0);
    expect(foreign.stderr).toContain(`not a host address of network front`);
    const pooled = await runOn("back", "true", ["--ip", "198.18.180.9"]);
    expect(pooled.stderr).toContain("only when connecting to networks with user configured subnets");
    const missing = await runOn("nowhere", "true");
    expect(missing.code).toBe(125);
    expect(missing.stderr).toContain("network nowhere not found");
  });

  it("publishes a port of a container on a user network, reachable from the host", async () => {
    const port = await freePort();
    const id = await dockerOk(env, [
      "run",
      "-d",
      "--name",
      "pweb",
      "--network",
      "front",
      "-p",
      `${port}:80`,
      image,
      "httpd",
      "-f",
      "-p",
      "80",
      "-h",
      "/etc",
    ]);
    const body = await waitFor("the published port", async () => {
      try {
        const res = await fetch(`http://127.0.0.1:${port}/hostname`, { signal: AbortSignal.timeout(1000) });
        return res.ok ? await res.text() : null;
      } catch {
        return null;
      }
    });
    expect(body.trim()).toBe(id.slice(0, 12));
    expect(await dockerOk(env, ["port", "pweb", "80"])).toContain(`0.0.0.0:${port}`);
    await dockerOk(env, ["rm", "-f", "pweb"]);
  });

  it("an agent restart keeps the networks, the running containers' interfaces and their names", async () => {
    const before = network.user.list().map((n) => n.bridge);
    await agent.handle.close();
    network = newNetwork(agent.root);
    agent = await startTestAgent({ dir: agent.dir, insecureRegistries: [registry.host], network });
    env = agent.env;
    expect(network.user.list().map((n) => n.bridge)).toEqual(before);
    expect(JSON.parse(await dockerOk(env, ["inspect", "a1"]))[0].State.Running).toBe(true);
    const r = await runOn("front", "ping -c 1 -W 5 a1 && ping -c 1 -W 5 alpha");
    expect(r.code, r.stderr + r.stdout).toBe(0);
  });

  it("connect and disconnect a running container; rm refuses a network in use", async () => {
    await dockerOk(env, ["network", "connect", "--alias", "beta", "back", "a1"]);
    const reach = await runOn("back", "ping -c 1 -W 5 a1 && ping -c 1 -W 5 beta");
    expect(reach.code, reach.stderr + reach.stdout).toBe(0);
    const twice = await docker(env, ["network", "connect", "back", "a1"]);
    expect(twice.stderr).toContain("already exists in network back");
    await dockerOk(env, ["network", "disconnect", "back", "a1"]);
    const gone = await runOn("back", "ping -c 1 -W 2 a1");
    expect(gone.code).not.toBe(0);

    const inUse = await docker(env, ["network", "rm", "front"]);
    expect(inUse.code).not.toBe(0);
    expect(inUse.stderr).toContain("is in use by container(s) a1");
    const predefined = await docker(env, ["network", "rm", "bridge"]);
    expect(predefined.stderr).toContain("bridge is a pre-defined network and cannot be removed");

    await dockerOk(env, ["rm", "-f", "a1", "b1"]);
    rememberBridges();
    await dockerOk(env, ["network", "rm", "front"]);
    expect(await dockerOk(env, ["network", "prune", "-f"])).toContain("back");
    const left = await dockerOk(env, ["network", "ls", "--format", "{{.Name}}"]);
    expect(left.split("\n").sort()).toEqual(["bridge", "host", "none"]);
    for (const b of bridgesSeen) expect(linkExists(b), b).toBe(false);
    expect(netnsList().filter((n) => agent.handle.containers.all().some((c) => n.includes(c.id.slice(0, 12))))).toEqual([]);
  });

  it.skipIf(!HAS_COMPOSE)(
    "docker-compose up makes the project network and services reach each other by name; down removes it all",
    async () => {
      const dir = fs.mkdtempSync(join(agent.dir, "compose-"));
      fs.writeFileSync(
        join(dir, "docker-compose.yml"),
        [
          'version: "3.8"',
          "services:",
          "  web:",
          `    image: ${image}`,
          '    command: ["httpd", "-f", "-p", "80", "-h", "/etc"]',
          "  client:",
          `    image: ${image}`,
          '    command: ["sh", "-c", "until wget -q -O /tmp/out http://web/hostname; do sleep 0.2; done; echo got $$(cat /tmp/out); exec sleep 600"]',
          "",
        ].join("\n"),
      );
      const up = await compose(["-p", "n14c", "up", "-d"], dir);
      expect(up.code, up.stderr).toBe(0);
      const nets = await dockerOk(env, ["network", "ls", "--format", "{{.Name}}"]);
      expect(nets.split("\n")).toContain("n14c_default");
      rememberBridges();
      const webId = await dockerOk(env, ["inspect", "-f", "{{.Id}}", "n14c_web_1"]);
      const logs = await waitFor(
        "the client to fetch from web by name",
        async () => {
          const l = await docker(env, ["logs", "n14c_client_1"]);
          return l.stdout.includes("got ") ? l.stdout : null;
        },
        30_000,
      );
      expect(logs).toContain(`got ${webId.slice(0, 12)}`);

      const down = await compose(["-p", "n14c", "down"], dir);
      expect(down.code, down.stderr).toBe(0);
      expect(await dockerOk(env, ["ps", "-aq"])).toBe("");
      expect((await dockerOk(env, ["network", "ls", "--format", "{{.Name}}"])).split("\n")).not.toContain("n14c_default");
      for (const b of bridgesSeen) expect(linkExists(b), b).toBe(false);
    },
  );
});
