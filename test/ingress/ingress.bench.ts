// Ingress bench (issue 14): the routing mesh against a task reached directly, in the same run, on
// two netns machines with real agents and a control plane of their own (the faults lab), and how
// soon a newly published port answers on every node once its service converged. Needs root and
// `ab` (apache2-utils); run it under the kernel lock on a shared box:
//   flock /run/flotilla-kernel.lock npm run bench:ingress -- --json
// Settings (env): BENCH_REQUESTS (3000 per ab run), BENCH_CONCURRENCY (20), BENCH_ROUNDS (7 ab runs
// of each side per case, interleaved and alternating which side goes first; the median is kept), BENCH_PUBLISHES (3), FLOTILLA_HEARTBEAT_MS (5000, the
// agents' default: a table that only travelled with heartbeats would take up to that long).
// Cases: the service's one task runs on machine A; "direct" is A's address and the task's own
// published host port; the mesh is port 8080 on A (the task's node: DNAT to the container) or on
// B (-remote: DNAT to A, masqueraded), each with new connections and with keep-alive (ab -k;
// busybox httpd closes every connection, so keepAliveRequests says how many were reused).
// The last line with --json is {"settings":{…},"publish":{…},"cases":[{"name":"new-connection","meshRps":…,"directRps":…,"ratio":…},…]}.
import { execFile } from "node:child_process";
import { FaultLab, sleep, until } from "../faults/lab";

const REQUESTS = Number(process.env.BENCH_REQUESTS ?? 3000);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 20);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 7);
const PUBLISHES = Number(process.env.BENCH_PUBLISHES ?? 3);
const HEARTBEAT_MS = Number(process.env.FLOTILLA_HEARTBEAT_MS ?? 5000);
const json = process.argv.includes("--json");
const WHOAMI = ["sh", "-c", "mkdir -p /www && hostname > /www/index.html && exec httpd -f -p 80 -h /www"];
const log = (line: string) => process.stderr.write(`${line}\n`);

interface AbResult {
  rps: number;
  p99Ms: number;
  failed: number;
  keepAlive: number;
}

function ab(url: string, keepAlive: boolean): Promise<AbResult> {
  const args = ["-q", "-r", "-n", String(REQUESTS), "-c", String(CONCURRENCY), ...(keepAlive ? ["-k"] : []), url];
  return new Promise((resolve, reject) =>
    execFile("ab", args, { encoding: "utf8", timeout: 300_000 }, (err, stdout, stderr) => {
      const num = (re: RegExp) => Number(re.exec(stdout)?.[1] ?? NaN);
      const r = {
        rps: num(/Requests per second:\s+([\d.]+)/),
        p99Ms: num(/^\s*99%\s+(\d+)/m),
        failed: num(/Failed requests:\s+(\d+)/),
        keepAlive: num(/Keep-Alive requests:\s+(\d+)/) || 0,
      };
      if (Number.isNaN(r.rps)) reject(new Error(`ab ${args.join(" ")}: ${err?.message ?? ""} ${stderr.slice(-500)}`));
      else resolve(r);
    }),
  );
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/**
 * Milliseconds from "the task RUNNING" (as the API says, polled every 20 ms) to "the port answers
 * on every node", per publish. One replica: the port cannot answer before the task runs, so a
 * figure below zero is the polling's resolution, not an early answer.
 */
async function publishLatency(lab: FaultLab, i: number): Promise<{ convergedToAnswerMs: Record<string, number> }> {
  const name = `pub${i}`;
  const port = 8090 + i;
  const r = await lab.ctl([
    "service",
    "create",
    "--detach",
    "--name",
    name,
    "--replicas",
    "1",
    "--publish",
    `${port}:80`,
    lab.image,
    ...WHOAMI,
  ]);
  if (r.code !== 0) throw new Error(`ctl service create ${name}: ${r.stderr}`);
  let convergedAt = 0;
  const answered: Record<string, number> = {};
  const deadline = Date.now() + 120_000;
  // Both watched at once, every 20 ms: the API's task states and each node's port.
  while ((convergedAt === 0 || Object.keys(answered).length < lab.machines.length) && Date.now() < deadline) {
    const now = Date.now();
    await Promise.all([
      convergedAt
        ? undefined
        : lab.runningTasks(name).then((t) => {
            if (t.length === 1 && !convergedAt) convergedAt = now;
          }),
      ...lab.machines.map(async (m) => {
        if (answered[m] !== undefined) return;
        if ((await lab.get(m, port)) !== undefined) answered[m] = Date.now();
      }),
    ]);
    await sleep(20);
  }
  if (!convergedAt || Object.keys(answered).length < lab.machines.length)
    throw new Error(`${name}: did not converge and answer everywhere`);
  const out: Record<string, number> = {};
  for (const m of lab.machines) out[m] = answered[m] - convergedAt;
  const rm = await lab.ctl(["service", "rm", name]);
  if (rm.code !== 0) throw new Error(`ctl service rm ${name}: ${rm.stderr}`);
  return { convergedToAnswerMs: out };
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error("bench:ingress needs root (network namespaces, the shim)");
  const settings = { requests: REQUESTS, concurrency: CONCURRENCY, rounds: ROUNDS, publishes: PUBLISHES, heartbeatMs: HEARTBEAT_MS };
  log(`bench:ingress settings: ${JSON.stringify(settings)}`);
  const lab = new FaultLab({
    tag: `b${process.pid.toString(36)}`,
    // 198.19.131.0/24: the ingress e2e test has 130.
    subnet: 131,
    heartbeatMs: HEARTBEAT_MS,
    sweepMs: 5000,
    agentMaxBackoffMs: 2000,
    machines: 2,
    log,
  });
  try {
    await lab.up();
    const [a, b] = lab.machines;

    const publishes: number[] = [];
    for (let i = 1; i <= PUBLISHES; i++) {
      const p = await publishLatency(lab, i);
      log(`publish ${i}: ${JSON.stringify(p)}`);
      publishes.push(Math.max(...Object.values(p.convergedToAnswerMs)));
    }
    const publish = { slowestNodeMs: publishes, medianMs: median(publishes), goalMs: 1000, heartbeatMs: HEARTBEAT_MS };

    const r = await lab.ctl([
      "service",
      "create",
      "--timeout",
      "120s",
      "--name",
      "web",
      "--constraint",
      `node.hostname==${a}`,
      "--publish",
      "8080:80",
      lab.image,
      ...WHOAMI,
    ]);
    if (r.code !== 0) throw new Error(`ctl service create web: ${r.stderr}`);
    const [task] = await lab.runningTasks("web");
    const env = await lab.dockerEnv(a);
    const hostPort = await new Promise<number>((resolve, reject) =>
      execFile("docker", ["port", task.containerId!, "80/tcp"], { env, encoding: "utf8" }, (err, out) =>
        err ? reject(err) : resolve(Number(/:(\d+)\s*$/m.exec(out)?.[1])),
      ),
    );
    const direct = `http://${lab.ips[a]}:${hostPort}/`;
    for (const m of lab.machines) if (!(await until(async () => lab.get(m), 30_000))) throw new Error(`${m}:8080 does not answer`);

    const cases = [];
    for (const c of [
      { name: "new-connection", mesh: `http://${lab.ips[a]}:8080/`, keepAlive: false },
      { name: "keep-alive", mesh: `http://${lab.ips[a]}:8080/`, keepAlive: true },
      { name: "new-connection-remote", mesh: `http://${lab.ips[b]}:8080/`, keepAlive: false },
      { name: "keep-alive-remote", mesh: `http://${lab.ips[b]}:8080/`, keepAlive: true },
    ]) {
      const mesh: AbResult[] = [];
      const dir: AbResult[] = [];
      // Interleaved, and each side first every other round, so both see the same background load.
      for (let i = 0; i < ROUNDS; i++) {
        if (i % 2 === 0) {
          dir.push(await ab(direct, c.keepAlive));
          mesh.push(await ab(c.mesh, c.keepAlive));
        } else {
          mesh.push(await ab(c.mesh, c.keepAlive));
          dir.push(await ab(direct, c.keepAlive));
        }
      }
      const meshRps = median(mesh.map((x) => x.rps));
      const directRps = median(dir.map((x) => x.rps));
      const row = {
        name: c.name,
        meshRps,
        directRps,
        ratio: Math.round((meshRps / directRps) * 100) / 100,
        meshP99Ms: median(mesh.map((x) => x.p99Ms)),
        directP99Ms: median(dir.map((x) => x.p99Ms)),
        failed: mesh.reduce((s, x) => s + x.failed, 0) + dir.reduce((s, x) => s + x.failed, 0),
        keepAliveRequests: median(mesh.map((x) => x.keepAlive)),
        goal: 0.9,
      };
      log(JSON.stringify(row));
      cases.push(row);
    }
    const result = { settings, publish, cases };
    if (json) process.stdout.write(`${JSON.stringify(result)}\n`);
    else process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
  } finally {
    await lab.down();
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`bench:ingress: ${(e as Error).stack ?? String(e)}\n`);
  process.exitCode = 1;
});
