// npm run bench:failover [-- --json]: the HA topology of deploy/ha-local on loopback, 3 sim agents
// and a service; one case per failure (an API process killed, the Postgres primary stopped and
// its standby promoted, the Redis master killed and replaced by Sentinel). Per case: seconds
// until writes succeed again, failed requests, acknowledged changes lost, containers restarted.
// Settings: FLOTILLA_HA_BENCH_STATE_DIR (/var/tmp/flotilla-ha-bench), FLOTILLA_HA_BENCH_PORT_BASE (27400).
import { CASES, Workload, type CaseResult } from "./failover-cases";
import { HaTopology } from "./ha-topology";

async function main(): Promise<void> {
  const json = process.argv.includes("--json");
  const t = new HaTopology(
    process.env.FLOTILLA_HA_BENCH_STATE_DIR ?? "/var/tmp/flotilla-ha-bench",
    Number(process.env.FLOTILLA_HA_BENCH_PORT_BASE ?? 27400),
  );
  const w = new Workload(t);
  const cases: CaseResult[] = [];
  try {
    t.up();
    await w.start();
    for (const c of CASES) {
      const r = await w.run(c);
      console.error(
        `${r.name}: writes back after ${r.writesBackS}s, ${r.failedRequests} failed requests, ${r.lostChanges} lost, ${r.containersRestarted} restarted, ${r.doubledContainers} doubled, converged ${r.converged}`,
      );
      cases.push(r);
    }
  } finally {
    await w.stop();
    t.down();
  }
  const out = { cases };
  console.log(json ? JSON.stringify(out) : JSON.stringify(out, null, 2));
}

main().catch((e: Error) => {
  console.error(e.stack ?? e.message);
  process.exit(1);
});
