// Helpers of the end-to-end tests: run a command, forward a port from a machines' bridge to a
// loopback service, parse `ctl machine env` output.
import { execFile } from "node:child_process";
import { createServer, connect, type Server } from "node:net";

export interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

export function run(cmd: string, args: string[], env: Record<string, string | undefined>, timeoutMs = 120_000): Promise<Result> {
  const t0 = Date.now();
  return new Promise((resolvePromise) => {
    execFile(cmd, args, { env: env as NodeJS.ProcessEnv, encoding: "utf8", timeout: timeoutMs }, (err, stdout, stderr) => {
      if (process.env.E2E_DEBUG) process.stderr.write(`[${Date.now() - t0}ms] ${cmd} ${args.slice(-4).join(" ")} → ${err ? "ERR " : ""}${stdout.slice(0, 200)} ${stderr.slice(-2500)}\n`);
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

