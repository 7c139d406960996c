// Helpers of the end-to-end tests: run a command, set up and clean up the machines' bridge and
// the control plane's machine settings, forward a port from the bridge to a loopback service,
// parse `ctl machine env` output.
import { execFile, execFileSync } from "node:child_process";
import { createServer, connect, type Server } from "node:net";
import { join } from "node:path";
import { repoRoot } from "../support/stack";
export { removeLeftovers } from "../support/leftovers";

export interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

export function run(cmd: string, args: string[], env: Record<string, string | undefined>, timeoutMs = 120_000): Promise<Result> {
  const t0 = Date.now();
  return new Promise((resolvePromise) => {
    execFile(cmd, args, { env: env as NodeJS.ProcessEnv, encoding: "utf8", timeout: timeoutMs }, (err, stdout, stderr) => {
      if (process.env.E2E_DEBUG)
        process.stderr.write(
          `[${Date.now() - t0}ms] ${cmd} ${args.slice(-4).join(" ")} → ${err ? "ERR " : ""}${stdout.slice(0, 200)} ${stderr.slice(-2500)}\n`,
        );
      resolvePromise({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

/** Forwards gateway:port (on the machines' bridge) to a loopback port, so agents in their namespaces reach it. */
export function forward(gateway: string, port: number, target: number): Promise<Server> {
  return new Promise((res, rej) => {
    const server = createServer((sock) => {
      const up = connect(target, "127.0.0.1");
      sock.pipe(up).pipe(sock);
      up.on("error", () => sock.destroy());
      sock.on("error", () => up.destroy());
    });
    server.once("error", rej);
    server.listen(port, gateway, () => res(server));
  });
}

/** `eval $(ctl machine env NAME)`: the export lines, parsed. */
export function parseExports(text: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const m of text.matchAll(/^export (\w+)="(.*)"$/gm)) env[m[1]] = m[2];
  return env;
}

/**
 * Makes the machines' bridge with its gateway before the first machine, so listeners on the
 * gateway can bind from the start (the netns driver adopts a bridge that has its gateway).
 */
export function addBridge(name: string, gateway: string, prefixLength = 24): void {
  execFileSync("ip", ["link", "add", name, "type", "bridge"]);
  execFileSync("ip", ["addr", "add", `${gateway}/${prefixLength}`, "dev", name]);
  execFileSync("ip", ["link", "set", name, "up"]);
}

const MACHINE_ENV = ["FLOTILLA_DATA_DIR", "FLOTILLA_AGENT_BUNDLE", "FLOTILLA_AGENT_API_URL"] as const;

/**
 * Builds the agent bundle into `dir` and points the control plane's machines at it (data under
 * `dir/data`, agents reporting to `agentApiUrl`). Returns what puts the environment back.
 */
export function useMachinesEnv(dir: string, agentApiUrl: string): () => void {
  const saved = Object.fromEntries(MACHINE_ENV.map((k) => [k, process.env[k]]));
  const bundle = join(dir, "flotilla-agent.tar.gz");
  execFileSync("node", [join(repoRoot, "scripts/build-agent-bundle.mjs"), "--out", bundle], { stdio: "ignore" });
  process.env.FLOTILLA_DATA_DIR = join(dir, "data");
  process.env.FLOTILLA_AGENT_BUNDLE = bundle;
  process.env.FLOTILLA_AGENT_API_URL = agentApiUrl;
  return () => {
    for (const k of MACHINE_ENV) {
      if (saved[k] === undefined) delete process.env[k];
      else process.env[k] = saved[k];
    }
  };
}
