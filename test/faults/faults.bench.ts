// Faults bench (issue 10): the control plane's parts fail for real under a running service on
// three netns machines, and each case reports what happened to the containers, as the machines
// report them. Needs root; run it under the kernel lock on a shared box:
//   flock /run/flotilla-kernel.lock npm run bench:faults -- --json
// Settings (env): BENCH_CASES (all; a comma list of case names), BENCH_OUTAGE_S (60), BENCH_REPLICAS (9), BENCH_SCALE_TO (30),
// FLOTILLA_HEARTBEAT_MS (2000), FLOTILLA_SWEEP_INTERVAL_MS (5000), FLOTILLA_AGENT_MAX_BACKOFF_MS
// (2000). The last line with --json is
// {"settings":{…},"cases":[{"name":…,…},…]}.
import { FaultLab } from "./lab";
import {
  agentKill,
  apiKill,
  createService,
  hostKillInFlight,
  postgresOutage,
  redisRestart,
  settled,
  type CaseResult,
  type Timing,
} from "./cases";

const OUTAGE_S = Number(process.env.BENCH_OUTAGE_S ?? 60);
const REPLICAS = Number(process.env.BENCH_REPLICAS ?? 9);
const SCALE_TO = Number(process.env.BENCH_SCALE_TO ?? 30);
// The down window (3 beats) must outlast an agent restart (the supervisor's 1 s and Node's start,
// 2-3 s on this machine under load): with 1 s beats an agent kill looked like a dead host.
const HEARTBEAT_MS = Number(process.env.FLOTILLA_HEARTBEAT_MS ?? 2000);
const SWEEP_MS = Number(process.env.FLOTILLA_SWEEP_INTERVAL_MS ?? 5000);
const BACKOFF_MS = Number(process.env.FLOTILLA_AGENT_MAX_BACKOFF_MS ?? 2000);
const json = process.argv.includes("--json");

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error("bench:faults needs root (network namespaces, the shim)");
  const settings = {
    outageS: OUTAGE_S,
    replicas: REPLICAS,
    scaleTo: SCALE_TO,
    heartbeatMs: HEARTBEAT_MS,
    sweepMs: SWEEP_MS,
    agentMaxBackoffMs: BACKOFF_MS,
    downAfterMs: 3 * HEARTBEAT_MS,
  };
  process.stderr.write(`bench:faults settings: ${JSON.stringify(settings)}\n`);
  const t: Timing = { settleMs: 2 * 3 * HEARTBEAT_MS + 2 * SWEEP_MS + BACKOFF_MS, limitMs: 180_000 };
  const lab = new FaultLab({
    tag: process.pid.toString(36),
    // 198.19.184.0/24: no test uses it, so the bench can run beside the suites.
    subnet: 184,
    heartbeatMs: HEARTBEAT_MS,
    sweepMs: SWEEP_MS,
    agentMaxBackoffMs: BACKOFF_MS,
    machines: 3,
    log: (l) => process.stderr.write(`${l}\n`),
  });
  const cases: CaseResult[] = [];
  const note = (r: CaseResult) => {
    cases.push(r);
    process.stderr.write(`${JSON.stringify(r)}\n`);
  };
  try {
    await lab.up();
    const web = "web";
    await createService(lab, web, REPLICAS, t);
    const [a, , c] = lab.machines;
    // BENCH_CASES=name,name runs only those (each case starts from where the one before leaves the service).
    const only = process.env.BENCH_CASES?.split(",");
    const wanted = (name: string) => !only || only.includes(name);
    let replicas = REPLICAS;
    const scaleTo = async (n: number) => {
      if (replicas === n) return;
      const r = await lab.ctl(["service", "scale", `${web}=${n}`]);
      if (r.code !== 0 || !(await settled(lab, web, n, t))) throw new Error(`${web} did not converge at ${n}: ${r.stderr}`);
      replicas = n;
    };
    if (wanted("postgres-outage")) note(await postgresOutage(lab, web, REPLICAS, OUTAGE_S * 1000, t));
    if (wanted("redis-restart")) {
      note(await redisRestart(lab, web, REPLICAS, REPLICAS + 3, t));
      replicas = REPLICAS + 3;
    }
    if (wanted("agent-kill")) {
      await scaleTo(REPLICAS + 3);
      note(await agentKill(lab, web, REPLICAS + 3, a, t));
    }
    if (wanted("api-kill")) {
      await scaleTo(REPLICAS + 3);
      note(await apiKill(lab, web, REPLICAS + 3, SCALE_TO, t));
      replicas = SCALE_TO;
    }
    if (wanted("host-kill-in-flight")) {
      await scaleTo(SCALE_TO);
      const r = await hostKillInFlight(lab, web, SCALE_TO, REPLICAS, c, t);
      note(r);
      if (r.replaceS === null) {
        process.stderr.write(`tasks: ${JSON.stringify(await lab.json("/api/v1/tasks?service=" + web))}\n`);
        process.stderr.write(`containers: ${JSON.stringify(await lab.containers())}\n`);
      }
    }
  } catch (e) {
    process.stderr.write(`bench:faults: ${(e as Error).stack}\ncontrol plane log tail:\n${lab.apiLogTail()}\n`);
    process.exitCode = 1;
  } finally {
    await lab.down();
  }
  const table = cases
    .map(
      (r) =>
        `${r.name}: ${Object.entries(r)
          .filter(([k]) => k !== "name")
          .map(([k, v]) => `${k}=${v}`)
          .join(" ")}`,
    )
    .join("\n");
  process.stdout.write(`${table}\n`);
  if (json) process.stdout.write(JSON.stringify({ settings, cases }) + "\n");
}

void main();
