// The engine benchmark (agent/bench/engine.bench.ts) with an "agent" row: the Engine API round
// trip a client pays for a container — POST create, POST wait (headers), POST start, wait's
// answer — of /bin/true from the busybox image (network none, like the OCI bundles of the crun
// row), through an in-process agent on a unix socket. Also reports the agent's start time and the
// idle RSS of `bin/flotilla-agent.js` (needs a build). Plus the interactive rows of
// interactive.bench.ts: exec of /bin/true (shim and agent against `crun exec`) and the time from
// `docker run -it` to the first prompt byte.
//
//   npm run bench:engine [-- --runs N] [-- --json]
//
// Needs root, the registry fixtures (test/support/README.md) and, for RSS, `npm run build`.
import { spawn } from "node:child_process";
import * as fs from "node:fs";
import http from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { engineRatios, runEngineBench, type BenchRow } from "./engine.bench";
import { interactiveRows, type InteractiveBench } from "./interactive.bench";
import { startRegistry } from "../../test/support/registry";
import { startAgent } from "../src";
import { HostNetwork } from "../src/network";

interface Reply {
  status: number;
  body: string;
}

function request(
  socketPath: string,
  agent: http.Agent,
  method: string,
  path: string,
  body?: unknown,
): { headers: Promise<void>; done: Promise<Reply> } {
  let headersArrived!: () => void;
  const headers = new Promise<void>((r) => (headersArrived = r));
  const done = new Promise<Reply>((resolve, reject) => {
    const req = http.request({ socketPath, agent, method, path, headers: body ? { "Content-Type": "application/json" } : {} }, (res) => {
      headersArrived();
      let text = "";
      res.setEncoding("utf8");
      res.on("data", (c: string) => (text += c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body: text }));
    });
    req.on("error", reject);
    req.end(body ? JSON.stringify(body) : undefined);
  });
  return { headers, done };
}

/** RSS (MB) of a fresh `bin/flotilla-agent.js` after `settleMs` idle; null without a build. */
async function idleRssMb(dir: string, settleMs = 1000): Promise<number | null> {
  const bin = join(__dirname, "..", "bin", "flotilla-agent.js");
  if (!fs.existsSync(join(__dirname, "..", "dist", "main.js"))) return null;
  // Its own bridge, subnet (198.18.0.0/15) and chains, torn down afterwards.
  const net = { bridge: "fltbench0", subnet: "198.18.250.0/24", chainPrefix: "FLTBENCH" };
  const root = join(dir, "idle-root");
  const network = new HostNetwork({
    stateDir: join(root, "network"),
    bridgeName: net.bridge,
    subnet: net.subnet,
    chainPrefix: net.chainPrefix,
  });
  const child = spawn(
    process.execPath,
    [
      bin,
      "--root",
      root,
      "--socket",
      join(dir, "idle.sock"),
      "--bridge",
      net.bridge,
      "--subnet",
      net.subnet,
      "--chain-prefix",
      net.chainPrefix,
    ],
    {
      stdio: ["ignore", "ignore", "pipe"],
    },
  );
  try {
    await new Promise<void>((resolve, reject) => {
      let log = "";
      child.stderr!.on("data", (b: Buffer) => {
        log += b.toString();
        if (log.includes("listening on")) resolve();
      });
      child.once("exit", (code) => reject(new Error(`agent exited ${code}: ${log}`)));
    });
    await new Promise((r) => setTimeout(r, settleMs));
    const kb = Number(/^VmRSS:\s+(\d+)/m.exec(fs.readFileSync(`/proc/${child.pid}/status`, "utf8"))![1]);
    return Math.round((kb / 1024) * 10) / 10;
  } finally {
    child.kill("SIGTERM");
    await new Promise((r) => child.once("exit", r));
    await network.teardown();
  }
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const runs = argv.includes("--runs") ? Number(argv[argv.indexOf("--runs") + 1]) : 30;
  const json = argv.includes("--json");
  const registry = await startRegistry();
  const dir = fs.mkdtempSync(join(tmpdir(), "flotilla-agent-bench-"));
  const socket = join(dir, "agent.sock");
  try {
    const image = await registry.pushBusybox();
    const t0 = performance.now();
    const agent = await startAgent({ root: join(dir, "root"), socket, network: null, insecureRegistries: [registry.host] });
    const startMs = performance.now() - t0;
    const keepAlive = new http.Agent({ keepAlive: true });
    const pull = await request(socket, keepAlive, "POST", `/v1.41/images/create?fromImage=${encodeURIComponent(image)}`).done;
    if (pull.status !== 200 || pull.body.includes('"error"')) throw new Error(`pull failed: ${pull.body}`);

    const ids: string[] = [];
    const row: BenchRow = {
      name: "agent",
      async run(i) {
        const created = await request(socket, keepAlive, "POST", "/v1.41/containers/create", {
          Image: image,
          Cmd: ["/bin/true"],
          HostConfig: { NetworkMode: "none" },
        }).done;
        if (created.status !== 201) throw new Error(`create: ${created.body}`);
        const id = (JSON.parse(created.body) as { Id: string }).Id;
        ids[i] = id;
        const wait = request(socket, keepAlive, "POST", `/v1.41/containers/${id}/wait?condition=next-exit`);
        await wait.headers;
        const start = await request(socket, keepAlive, "POST", `/v1.41/containers/${id}/start`).done;
        if (start.status !== 204) throw new Error(`start: ${start.body}`);
        const result = JSON.parse((await wait.done).body) as { StatusCode: number };
        if (result.StatusCode !== 0) throw new Error(`exit ${result.StatusCode}`);
      },
      async cleanup(i) {
        await request(socket, keepAlive, "DELETE", `/v1.41/containers/${ids[i]}`).done;
      },
    };
    let interactive: InteractiveBench | null = null;
    const stats = await runEngineBench({
      runs,
      json: false,
      extraRows: async (ctx) => {
        interactive = await interactiveRows({
          api: { socket, keepAlive },
          image,
          shimBin: ctx.shimBin,
          rootfs: ctx.rootfs,
          dir: join(dir, "interactive"),
        });
        return [row, ...interactive.rows];
      },
    });
    await (interactive as InteractiveBench | null)?.teardown();
    await agent.close();
    keepAlive.destroy();
    const rss = await idleRssMb(dir);

    const ratios = engineRatios(stats);
    const byName = Object.fromEntries(stats.map((s) => [s.name, s.medianMs]));
    const ratio = (a?: number, b?: number) => (a && b ? Number((a / b).toFixed(2)) : null);
    const execRatios = {
      "shimExec/crunExec": ratio(byName["shim exec"], byName["crun exec"]),
      "agentExec/crunExec": ratio(byName["agent exec"], byName["crun exec"]),
    };
    const runItFirstByteMs = byName["agent run -it"] !== undefined ? Number(byName["agent run -it"].toFixed(1)) : null;
    console.log(
      `agent/crun ${ratios["agent/crun"] ?? "n/a"} (goal ≤ 1.5); agent start ${startMs.toFixed(1)} ms (in-process); idle RSS ${rss ?? "n/a (npm run build first)"} MB`,
    );
    console.log(
      `exec of /bin/true: shim/crun ${execRatios["shimExec/crunExec"] ?? "n/a"}, agent (API) /crun ${execRatios["agentExec/crunExec"] ?? "n/a"} (goal ≤ 1.0); docker run -it to the first prompt byte ${runItFirstByteMs ?? "n/a"} ms (goal < 50)`,
    );
    if (json) {
      const medians = Object.fromEntries(stats.map((s) => [s.name, Number(s.medianMs.toFixed(3))]));
      console.log(
        JSON.stringify({
          runs,
          medians,
          ratios,
          agentStartMs: Number(startMs.toFixed(1)),
          agentIdleRssMb: rss,
          execRatios,
          runItFirstByteMs,
        }),
      );
    }
  } finally {
    await registry.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err instanceof Error ? err.stack : err);
  process.exit(1);
});
