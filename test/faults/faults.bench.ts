// Faults bench (issue 10): the control plane's parts fail for real under a running service on
// three netns machines, and each case reports what happened to the containers, as the machines
// report them. Needs root; run it under the kernel lock on a shared box:
//   flock /run/flotilla-kernel.lock npm run bench:faults -- --json
// Settings (env): BENCH_OUTAGE_S (60), BENCH_REPLICAS (9), BENCH_SCALE_TO (30),
// FLOTILLA_HEARTBEAT_MS (1000), FLOTILLA_SWEEP_INTERVAL_MS (5000), FLOTILLA_AGENT_MAX_BACKOFF_MS
// (2000). The last line with --json is
// {"settings":{…},"cases":[{"name":…,…},…]}.
import { FaultLab } from "./lab";
import { agentKill, apiKill, createService, hostKillInFlight, postgresOutage, redisRestart, type CaseResult, type Timing } from "./cases";

const OUTAGE_S = Number(process.env.BENCH_OUTAGE_S ?? 60);
const REPLICAS = Number(process.env.BENCH_REPLICAS ?? 9);
const SCALE_TO = Number(process.env.BENCH_SCALE_TO ?? 30);
const HEARTBEAT_MS = Number(process.env.FLOTILLA_HEARTBEAT_MS ?? 1000);
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
    subnet: 84,
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
    note(await postgresOutage(lab, web, REPLICAS, OUTAGE_S * 1000, t));
    note(await redisRestart(lab, web, REPLICAS, REPLICAS + 3, t));
    note(await agentKill(lab, web, REPLICAS + 3, a, t));
    note(await apiKill(lab, web, REPLICAS + 3, SCALE_TO, t));
    note(await hostKillInFlight(lab, web, SCALE_TO, REPLICAS, c, t));
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
