// Helpers for the agent's end-to-end tests with the real docker CLI: an agent on a socket in a
// temp dir (in-process or as a child process), the CLI run asynchronously (a synchronous spawn
// would block the in-process agent it talks to), raw HTTP over the unix socket, and a list of
// what containers could leave behind on the host. Every address is loopback or in 198.18.0.0/15.
import { execFile, execFileSync, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import http from "node:http";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startAgent, type AgentHandle, type StartAgentOptions } from "../src";
import { HostNetwork } from "../src/network";
import { sandboxNames } from "../src/network/links";
import { cgroupDirs } from "./support/shim";

export const IS_ROOT = process.getuid?.() === 0;
export const HAS_DOCKER_CLI = spawnSync("sh", ["-c", "command -v docker"]).status === 0;

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the docker CLI against `env` (DOCKER_HOST…); never throws on a non-zero exit. */
export function docker(env: NodeJS.ProcessEnv, args: readonly string[], timeoutMs = 60_000): Promise<CliResult> {
  return new Promise((resolve) => {
    execFile(
      "docker",
      args,
      { env: { PATH: process.env.PATH, HOME: env.DOCKER_CONFIG ?? tmpdir(), ...env }, timeout: timeoutMs, maxBuffer: 16 << 20 },
      (err, stdout, stderr) => {
        const code = err ? (typeof (err as { code?: unknown }).code === "number" ? (err as { code: number }).code : -1) : 0;
        resolve({ code, stdout: stdout.toString(), stderr: stderr.toString() });
      },
    );
  });
}

/** Like docker() but throws with the CLI's stderr unless it exits 0; returns trimmed stdout. */
export async function dockerOk(env: NodeJS.ProcessEnv, args: readonly string[], timeoutMs?: number): Promise<string> {
  const r = await docker(env, args, timeoutMs);
  if (r.code !== 0) throw new Error(`docker ${args.join(" ")} exited ${r.code}: ${r.stderr.trim()}`);
  return r.stdout.trim();
}

export interface RawResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** One HTTP request over the agent's unix socket; `body` is sent verbatim. */
export function rawRequest(
  socketPath: string,
  method: string,
  path: string,
  body?: string,
  headers: Record<string, string> = {},
): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      { socketPath, method, path, headers: { ...(body !== undefined ? { "Content-Type": "application/json" } : {}), ...headers } },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString("utf8") }));
      },
    );
    req.on("error", reject);
    req.end(body);
  });
}

export async function waitFor<T>(what: string, probe: () => T | Promise<T>, timeoutMs = 10_000): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v) return v as NonNullable<T>;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** A free /24 in 198.18.<from..from+19>.0 that no route on this host covers. */
export function freeSubnet(from: number): string {
  const routes = execFileSync("ip", ["-4", "route", "show", "table", "all"], { encoding: "utf8" });
  for (let i = 0; i < 20; i++) {
    const net = `198.18.${from + ((process.pid + i) % 20)}`;
    if (!routes.includes(`${net}.`)) return `${net}.0/24`;
  }
  throw new Error(`no free 198.18.${from}-${from + 19}.0/24 for the agent tests`);
}

/** Whether this host can do bridge networking (iproute2 and iptables present). */
export const HAS_BRIDGE_TOOLS = spawnSync("sh", ["-c", "command -v ip && command -v iptables"]).status === 0;

export interface BridgeSpec {
  /** ≤ 15 characters. */
  bridge: string;
  subnet: string;
  /** Our own iptables chains, so suites can run side by side. */
  chainPrefix: string;
}

/** A HostNetwork with names of its own (the agent's default would share flt0/FLOTILLA). */
export function testNetwork(root: string, spec: BridgeSpec): HostNetwork {
  return new HostNetwork({ stateDir: join(root, "network"), bridgeName: spec.bridge, subnet: spec.subnet, chainPrefix: spec.chainPrefix });
}

export interface TestAgent {
  handle: AgentHandle;
  dir: string;
  root: string;
  socket: string;
  /** DOCKER_HOST and a private DOCKER_CONFIG for the CLI. */
  env: NodeJS.ProcessEnv;
}

/** Starts an agent in this process with its own root and socket in a temp dir. */
export async function startTestAgent(opts: Partial<StartAgentOptions> & { dir?: string } = {}): Promise<TestAgent> {
  const dir = opts.dir ?? fs.mkdtempSync(join(tmpdir(), "flotilla-agent-"));
  const root = opts.root ?? join(dir, "root");
  const socket = opts.socket ?? join(dir, "docker.sock");
  const config = join(dir, "docker-config");
  fs.mkdirSync(config, { recursive: true });
  const handle = await startAgent({ network: null, ...opts, root, socket });
  return { handle, dir, root, socket, env: { DOCKER_HOST: `unix://${socket}`, DOCKER_CONFIG: config } };
}

/**
 * What containers may leave on the host: overlay or other mounts under the agent root, cgroups of
 * the given container ids, their network namespaces, veths on the bridge.
 */
export function leftovers(root: string, ids: readonly string[], bridge?: string): string[] {
  const found: string[] = [];
  for (const line of fs.readFileSync("/proc/self/mountinfo", "utf8").split("\n")) {
    if (line.includes(root)) found.push(`mount: ${line}`);
  }
  for (const id of ids) {
    for (const d of cgroupDirs(id)) if (fs.existsSync(d)) found.push(`cgroup: ${d}`);
    if (bridge) {
      const { netns } = sandboxNames(bridge, id);
      if (fs.existsSync(join("/run/netns", netns))) found.push(`netns: ${netns}`);
    }
  }
  if (bridge && fs.existsSync(`/sys/class/net/${bridge}`)) {
    const ports = fs.existsSync(`/sys/class/net/${bridge}/brif`) ? fs.readdirSync(`/sys/class/net/${bridge}/brif`) : [];
    for (const p of ports) found.push(`veth on ${bridge}: ${p}`);
  }
  return found;
}

/** Container ids of everything the agent knows, for leftovers(). */
export function knownIds(agent: AgentHandle): string[] {
  return agent.containers.all().map((c) => c.id);
}

/** A TCP port on 127.0.0.1 that was free a moment ago. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
    s.on("error", reject);
  });
}

/** Undoes startTestAgent: the agent's containers removed, the agent closed, its directory gone. */
export async function stopTestAgent(agent: TestAgent | undefined): Promise<void> {
  if (!agent) return;
  for (const c of agent.handle.containers.all()) await agent.handle.containers.remove(c.id, { force: true }).catch(() => {});
  await agent.handle.close();
  fs.rmSync(agent.dir, { recursive: true, force: true });
}
