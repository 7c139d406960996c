// The agent as a real process (bin/flotilla-agent.js, flags as an operator gives them):
//  - TCP with mutual TLS: the docker CLI with DOCKER_TLS_VERIFY and client certificates from
//    openssl works (including the hijacked attach of `docker run`); a client without a
//    certificate is refused; the log names who killed a container (a client, or an outsider).
//  - kill -9 of the agent: containers keep running (and serving on their published port), a new
//    agent on the same root lists them, re-adopts their ports and can stop them.
// Loopback and 198.18.0.0/15 only; the bridge has a name of its own.
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import * as fs from "node:fs";
import https from "node:https";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startRegistry, type TestRegistry } from "../../test/support/registry";
import { HostNetwork } from "../src/network";
import { docker, dockerOk, freePort, freeSubnet, HAS_BRIDGE_TOOLS, HAS_DOCKER_CLI, IS_ROOT, leftovers, waitFor } from "./docker-helpers";
import { hostCanBind } from "./support/network-helpers";
import { pidAlive } from "./support/shim";

const AGENT_DIR = join(__dirname, "..");
const BIN = join(AGENT_DIR, "bin", "flotilla-agent.js");
const BRIDGE = "fltdproc0";

let registry: TestRegistry;
let image: string;
let dir: string;
const children: ChildProcess[] = [];
/** Every agent here gets a bridge, subnet and chains of its own; torn down at the end. */
const networks: HostNetwork[] = [];

/** Starts bin/flotilla-agent.js; resolves once it says it listens. */
async function spawnAgent(args: string[]): Promise<{ child: ChildProcess; startMs: number; log: () => string }> {
  const t0 = performance.now();
  const child = spawn(process.execPath, [BIN, ...args], { stdio: ["ignore", "ignore", "pipe"] });
  children.push(child);
  let log = "";
  child.stderr!.on("data", (b: Buffer) => (log += b.toString()));
  await waitFor("the agent to listen", () => {
    if (child.exitCode !== null) throw new Error(`agent exited ${child.exitCode}: ${log}`);
    return log.includes("listening on");
  });
  return { child, startMs: performance.now() - t0, log: () => log };
}

/** CA, server certificate for 127.0.0.1, client certificate: the files docker-machine would make. */
function makeCerts(certDir: string): void {
  fs.mkdirSync(certDir, { recursive: true });
  const ssl = (...args: string[]) => execFileSync("openssl", args, { cwd: certDir, stdio: "pipe" });
  ssl(
    "req",
    "-x509",
    "-newkey",
    "rsa:2048",
    "-nodes",
    "-days",
    "2",
    "-subj",
    "/CN=flotilla-test-ca",
    "-keyout",
    "ca-key.pem",
    "-out",
    "ca.pem",
  );
  fs.writeFileSync(join(certDir, "server.ext"), "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n");
  fs.writeFileSync(join(certDir, "client.ext"), "extendedKeyUsage=clientAuth\n");
  for (const [name, cn] of [
    ["server", "127.0.0.1"],
    ["client", "client"],
  ] as const) {
    ssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", `/CN=${cn}`, "-keyout", `${name}-key.pem`, "-out", `${name}.csr`);
    ssl(
      "x509",
      "-req",
      "-in",
      `${name}.csr`,
      "-CA",
      "ca.pem",
      "-CAkey",
      "ca-key.pem",
      "-CAcreateserial",
      "-days",
      "2",
      "-extfile",
      `${name}.ext`,
      "-out",
      `${name}-cert.pem`,
    );
  }
  // The names the docker CLI reads from DOCKER_CERT_PATH.
  fs.copyFileSync(join(certDir, "client-cert.pem"), join(certDir, "cert.pem"));
  fs.copyFileSync(join(certDir, "client-key.pem"), join(certDir, "key.pem"));
}

describe.skipIf(!IS_ROOT || !HAS_DOCKER_CLI)("flotilla-agent as a process", () => {
  beforeAll(async () => {
    // The bin runs the compiled agent: bring dist/ up to date (incremental, quick when it is).
    execFileSync(process.execPath, [require.resolve("typescript/bin/tsc"), "-b", AGENT_DIR], { stdio: "pipe" });
    registry = await startRegistry();
    image = await registry.pushBusybox();
    dir = fs.mkdtempSync("/tmp/flotilla-dproc-");
  });

  afterAll(async () => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
    for (const n of networks) await n.teardown().catch(() => {});
    await registry?.stop();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it("serves the docker CLI over TCP with mutual TLS and refuses clients without a certificate", async () => {
    const certs = join(dir, "certs");
    makeCerts(certs);
    const port = await freePort();
    const root = join(dir, "tls-root");
    const net = { bridge: "fltdtls0", subnet: freeSubnet(160), chainPrefix: "FLTDTLS" };
    networks.push(
      new HostNetwork({ stateDir: join(root, "network"), bridgeName: net.bridge, subnet: net.subnet, chainPrefix: net.chainPrefix }),
    );
    const agent = await spawnAgent([
      "--root",
      root,
      "--socket",
      "none",
      "--tls-listen",
      `127.0.0.1:${port}`,
      "--tlscacert",
      join(certs, "ca.pem"),
      "--tlscert",
      join(certs, "server-cert.pem"),
      "--tlskey",
      join(certs, "server-key.pem"),
      "--insecure-registry",
      registry.host,
      "--bridge",
      net.bridge,
      "--subnet",
      net.subnet,
      "--chain-prefix",
      net.chainPrefix,
    ]);
    const env = {
      DOCKER_HOST: `tcp://127.0.0.1:${port}`,
      DOCKER_TLS_VERIFY: "1",
      DOCKER_CERT_PATH: certs,
      DOCKER_CONFIG: join(dir, "docker-config"),
    };
    expect(await dockerOk(env, ["version", "--format", "{{.Server.APIVersion}}"])).toBe("1.41");
    expect(await docker(env, ["run", "--rm", image, "sh", "-c", "echo over tls; exit 5"])).toMatchObject({ code: 5, stdout: "over tls\n" });

    // The log says who killed a container and why: a client through the API, or someone outside.
    const byClient = (await dockerOk(env, ["run", "-d", image, "sleep", "600"])).trim();
    await dockerOk(env, ["kill", byClient]);
    expect(agent.log()).toMatch(
      new RegExp(
        `container ${byClient.slice(0, 12)} \\(\\S+\\): sending signal 9: kill requested by POST \\S*/containers/${byClient}/kill from client certificate "client" at 127\\.0\\.0\\.1 \\(Docker-Client/`,
      ),
    );
    await waitFor("the kill's exit in the log", () =>
      new RegExp(`${byClient.slice(0, 12)} \\(\\S+\\) exited with code 137\n`).test(agent.log()),
    );
    const byOutsider = (await dockerOk(env, ["run", "-d", image, "sleep", "600"])).trim();
    process.kill(Number(await dockerOk(env, ["inspect", "--format", "{{.State.Pid}}", byOutsider])), "SIGKILL");
    await waitFor("the outside kill in the log", () =>
      new RegExp(
        `${byOutsider.slice(0, 12)} \\(\\S+\\) exited with code 137 \\(not signalled by this agent: signal 9 came from outside\\)`,
      ).test(agent.log()),
    );

    // No client certificate: the handshake (or the first read, with TLS 1.3) fails.
    const refused = await new Promise<string>((resolve) => {
      const req = https.get({ host: "127.0.0.1", port, path: "/_ping", ca: fs.readFileSync(join(certs, "ca.pem")) }, (res) =>
        resolve(`status ${res.statusCode}`),
      );
      req.on("error", (e) => resolve(`error ${(e as NodeJS.ErrnoException).code ?? e.message}`));
    });
    expect(refused).toMatch(/^error /);
    // And the plain HTTP client gets nothing either.
    const plain = await docker({ DOCKER_HOST: `tcp://127.0.0.1:${port}`, DOCKER_CONFIG: env.DOCKER_CONFIG }, ["version"]);
    expect(plain.code).not.toBe(0);

    agent.child.kill("SIGTERM");
    await new Promise((r) => agent.child.once("exit", r));
    expect(agent.child.exitCode).toBe(0);
  });

  // Start time and idle memory are figures of `npm run bench:engine` (agentStartMs, agentIdleRssMb),
  // not assertions: a loaded machine stretches them.
  it("starts with bridge networking, serves its socket (0660) and removes it on SIGTERM", async () => {
    const root = join(dir, "idle-root");
    const socket = join(dir, "idle.sock");
    // Bridge networking as in production, on a bridge, subnet and chains of this test's own.
    const net = { bridge: "fltdidle0", subnet: freeSubnet(140), chainPrefix: "FLTDIDLE" };
    const network = new HostNetwork({
      stateDir: join(root, "network"),
      bridgeName: net.bridge,
      subnet: net.subnet,
      chainPrefix: net.chainPrefix,
    });
    try {
      const agent = await spawnAgent([
        "--root",
        root,
        "--socket",
        socket,
        "--bridge",
        net.bridge,
        "--subnet",
        net.subnet,
        "--chain-prefix",
        net.chainPrefix,
      ]);
      expect((fs.statSync(socket).mode & 0o777).toString(8)).toBe("660");
      await docker({ DOCKER_HOST: `unix://${socket}`, DOCKER_CONFIG: join(dir, "docker-config") }, ["ps"]);
      agent.child.kill("SIGTERM");
      await new Promise((r) => agent.child.once("exit", r));
      expect(fs.existsSync(socket)).toBe(false);
    } finally {
      await network.teardown();
    }
  });

  it.skipIf(!HAS_BRIDGE_TOOLS)("survives kill -9: containers keep running, a new agent re-adopts them and their ports", async () => {
    const root = join(dir, "restart-root");
    const socket = join(dir, "restart.sock");
    const subnet = freeSubnet(120);
    const args = [
      "--root",
      root,
      "--socket",
      socket,
      "--insecure-registry",
      registry.host,
      "--subnet",
      subnet,
      "--bridge",
      BRIDGE,
      "--chain-prefix",
      "FLTDPROC",
    ];
    const env = { DOCKER_HOST: `unix://${socket}`, DOCKER_CONFIG: join(dir, "docker-config") };
    const network = new HostNetwork({ stateDir: join(root, "network"), bridgeName: BRIDGE, subnet, chainPrefix: "FLTDPROC" });
    try {
      const first = await spawnAgent(args);
      expect(first.log()).not.toContain("bridge networking unavailable");
      const port = await freePort();
      const web = await dockerOk(env, ["run", "-d", "--name", "web", "-p", `${port}:80`, image, "httpd", "-f", "-p", "80", "-h", "/etc"]);
      const sleeper = await dockerOk(env, ["run", "-d", "--name", "sleeper", "--network", "none", image, "sleep", "300"]);
      const done = await dockerOk(env, ["run", "-d", "--name", "done", image, "sh", "-c", "exit 2"]);
      // Exits while no agent runs: the next agent finds its exit in the shim's state.json.
      const short = await dockerOk(env, ["run", "-d", "--name", "short", image, "sh", "-c", "sleep 1; exit 6"]);
      await waitFor("done to exit", async () => (await dockerOk(env, ["inspect", "-f", "{{.State.Status}}", "done"])) === "exited");
      // What a client meets on the published port, in words a failure message can show.
      const get = async () => {
        try {
          const res = await fetch(`http://127.0.0.1:${port}/hostname`, { signal: AbortSignal.timeout(10_000) });
          return res.ok ? "ok" : `HTTP ${res.status}`;
        } catch (e) {
          return String((e as Error & { cause?: Error }).cause ?? e);
        }
      };
      await waitFor("the web server", async () => (await get()) === "ok");
      expect(await hostCanBind(port, "0.0.0.0")).toBe(false); // the agent holds the published port
      const pids = JSON.parse(await dockerOk(env, ["inspect", "--format", "{{json .State.Pid}}", "web"]));

      first.child.kill("SIGKILL");
      await new Promise((r) => first.child.once("exit", r));
      expect(pidAlive(pids)).toBe(true);
      expect(await get()).toBe("ok"); // the port stays published without the agent

      await waitFor(
        "short to exit without an agent",
        () => !fs.readFileSync(join(root, "containers", short, "shim", "state.json"), "utf8").includes('"running"'),
        5000,
      );
      const second = await spawnAgent(args);
      expect(second.log()).not.toContain("lost its network");
      const ps = await dockerOk(env, ["ps", "-a", "--format", "{{.Names}} {{.State}} {{.Ports}}"]);
      const rows = Object.fromEntries(ps.split("\n").map((l) => [l.split(" ")[0], l.split(" ").slice(1).join(" ").trim()]));
      expect(rows.done).toBe("exited");
      expect(rows.short).toBe("exited");
      expect(await dockerOk(env, ["inspect", "-f", "{{.State.ExitCode}}", "short"])).toBe("6");
      expect(rows.sleeper).toBe("running");
      expect(rows.web).toMatch(new RegExp(`^running .*0\\.0\\.0\\.0:${port}->80/tcp`));
      expect(await dockerOk(env, ["inspect", "-f", "{{.State.ExitCode}}", "done"])).toBe("2");
      expect(await get()).toBe("ok");
      // The new agent holds the published port again: no host process can bind it and be shadowed.
      expect(await hostCanBind(port, "0.0.0.0")).toBe(false);

      // The new agent sees exits of adopted containers and can stop them.
      await dockerOk(env, ["stop", "-t", "1", "web", "sleeper"]);
      expect(await dockerOk(env, ["inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", "web"])).toBe("exited 137");
      expect(await get()).toMatch(/ECONNREFUSED/);
      expect(await hostCanBind(port, "0.0.0.0")).toBe(true);
      await dockerOk(env, ["rm", "web", "sleeper", "done", "short"]);
      expect(leftovers(root, [web, sleeper, done, short], BRIDGE)).toEqual([]);
      second.child.kill("SIGTERM");
      await new Promise((r) => second.child.once("exit", r));
    } finally {
      await network.teardown();
    }
  });
});
