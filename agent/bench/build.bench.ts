// docker build through the agent's classic builder (POST /build over its unix socket): a 6-step
// Dockerfile (FROM, ARG, COPY, RUN, ENV, CMD) built cold (--no-cache) and fully cached, and the
// RUN step's time inside the build against the same command run through the shim directly, on
// the same layers, interleaved in the same run.
//
//   npm run bench:build [-- --runs N] [-- --json]     (last line with --json:
//   {"coldMs":…,"cachedMs":…,"runStepRatio":…})
//
// Needs root, the shim (make -C agent/shim) and the registry fixtures (test/support/README.md).
import { spawn } from "node:child_process";
import * as fs from "node:fs";
import http from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startRegistry } from "../../test/support/registry";
import { TAR_END, tarHeader, tarPadding } from "../src/build/tar-writer";
import { DEFAULT_SHIM } from "../src/config";
import { startAgent } from "../src";

const RUN_CMD = "seq 1 30000 > /numbers && sort -rn /numbers > /sorted && md5sum /sorted > /sum && rm /numbers";

function contextTar(files: Record<string, string>): Buffer {
  const parts: Buffer[] = [];
  for (const [path, text] of Object.entries(files)) {
    const data = Buffer.from(text);
    parts.push(
      tarHeader({ path, type: "file", size: data.length, mode: 0o644, uid: 0, gid: 0, mtime: 1_700_000_000 }),
      data,
      tarPadding(data.length),
    );
  }
  parts.push(TAR_END);
  return Buffer.concat(parts);
}

interface BuildTiming {
  totalMs: number;
  runStepMs: number;
  lines: string[];
}

function build(socketPath: string, query: string, body: Buffer): Promise<BuildTiming> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    let runStart = 0;
    let runEnd = 0;
    const lines: string[] = [];
    const req = http.request(
      { socketPath, method: "POST", path: `/v1.41/build?${query}`, headers: { "Content-Type": "application/x-tar" } },
      (res) => {
        let buf = "";
        res.setEncoding("utf8");
        res.on("data", (c: string) => {
          buf += c;
          for (let i = buf.indexOf("\n"); i >= 0; i = buf.indexOf("\n")) {
            const line = buf.slice(0, i).trim();
            buf = buf.slice(i + 1);
            if (!line) continue;
            const msg = JSON.parse(line) as { stream?: string; error?: string };
            if (msg.error) return reject(new Error(msg.error));
            const text = msg.stream ?? "";
            lines.push(text);
            if (/^Step 4\/6 : RUN/.test(text)) runStart = performance.now();
            if (/^Step 5\/6 : /.test(text)) runEnd = performance.now();
          }
        });
        res.on("end", () => {
          if (res.statusCode !== 200) return reject(new Error(`build answered ${res.statusCode}: ${buf}`));
          resolve({ totalMs: performance.now() - t0, runStepMs: runEnd - runStart, lines });
        });
      },
    );
    req.on("error", reject);
    req.end(body);
  });
}

function shimDirect(shim: string, lowerDirs: readonly string[], work: string, i: number): Promise<number> {
  const dir = join(work, `direct-${i}`);
  for (const d of ["upper", "work"]) fs.mkdirSync(join(dir, d), { recursive: true });
  const args = [
    "run",
    "--foreground",
    "--id",
    `benchdirect${i}`,
    "--state-dir",
    join(dir, "state"),
    "--rootfs-lower",
    lowerDirs.join(":"),
    "--upper",
    join(dir, "upper"),
    "--work",
    join(dir, "work"),
    "--netns",
    "new",
    "--env",
    "V=1",
    "--",
    "/bin/sh",
    "-c",
    RUN_CMD,
  ];
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn(shim, args, { stdio: "ignore" });
    child.on("error", reject);
    child.on("close", (code) => {
      const ms = performance.now() - t0;
      fs.rmSync(dir, { recursive: true, force: true });
      if (code !== 0) reject(new Error(`shim exited ${code}`));
      else resolve(ms);
    });
  });
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const round = (x: number) => Math.round(x * 10) / 10;

export async function runBuildBench(opts: { runs: number; json: boolean }) {
  const registry = await startRegistry();
  const dir = fs.mkdtempSync(join(tmpdir(), "flotilla-bench-build-"));
  const agent = await startAgent({
    root: join(dir, "root"),
    socket: join(dir, "docker.sock"),
    network: null,
    insecureRegistries: [registry.host],
  });
  try {
    const base = await registry.pushBusybox("bench/busybox:1");
    const dockerfile = `FROM ${base}\nARG V=1\nCOPY app.txt /app/app.txt\nRUN ${RUN_CMD}\nENV MODE=bench\nCMD ["cat", "/sum"]\n`;
    const body = contextTar({ Dockerfile: dockerfile, "app.txt": "x".repeat(4096) });
    // The base image is pulled once outside the timings, as a cache-warm machine would have it.
    await build(agent.socketPath!, "t=bench:warm", body);
    // The base image's layers, as the agent reports them (a second store on its root would empty its tmp/).
    const lowerDirs = await new Promise<string[]>((resolve, reject) => {
      http
        .get({ socketPath: agent.socketPath!, path: `/v1.41/images/${base}/json` }, (res) => {
          let text = "";
          res.on("data", (c: Buffer) => (text += c));
          res.on("end", () =>
            resolve((JSON.parse(text) as { GraphDriver: { Data: { LowerDir: string } } }).GraphDriver.Data.LowerDir.split(":")),
          );
        })
        .on("error", reject);
    });
    const cold: number[] = [];
    const runStep: number[] = [];
    const direct: number[] = [];
    for (let i = 0; i < opts.runs; i++) {
      const t = await build(agent.socketPath!, "t=bench:cold&nocache=1", body);
      cold.push(t.totalMs);
      runStep.push(t.runStepMs);
      direct.push(await shimDirect(DEFAULT_SHIM, lowerDirs, dir, i));
    }
    const cached: number[] = [];
    for (let i = 0; i < opts.runs; i++) {
      const t = await build(agent.socketPath!, "t=bench:cached", body);
      if (t.lines.filter((l) => l.includes("Using cache")).length !== 5) throw new Error(`expected 5 cached steps:\n${t.lines.join("")}`);
      cached.push(t.totalMs);
    }
    const result = {
      coldMs: round(median(cold)),
      cachedMs: round(median(cached)),
      runStepRatio: Math.round((median(runStep) / median(direct)) * 100) / 100,
    };
    console.log(`build, ${opts.runs} runs each (medians): cold ${result.coldMs} ms, fully cached ${result.cachedMs} ms (goal < 300 ms)`);
    console.log(
      `RUN step in the build ${round(median(runStep))} ms vs the same command through the shim ${round(median(direct))} ms: ${result.runStepRatio}x (goal <= 1.5x)`,
    );
    if (opts.json) console.log(JSON.stringify(result));
    return result;
  } finally {
    await agent.close();
    await registry.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[1] && /build\.bench\.ts$/.test(process.argv[1])) {
  const argv = process.argv.slice(2);
  const runsAt = argv.indexOf("--runs");
  runBuildBench({ runs: runsAt >= 0 ? Number(argv[runsAt + 1]) : 7, json: argv.includes("--json") }).catch((err) => {
    console.error(err);
    process.exit(1);
  });
}
