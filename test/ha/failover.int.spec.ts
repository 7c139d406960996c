// The control plane on the HA topology (deploy/ha-local: Postgres primary + synchronous standby,
// Redis + 3 Sentinels, two APIs, two workers) survives each failure with nothing lost and nothing
// doubled: acknowledged writes are all there, the service runs exactly its replicas, and a
// scale-up made during the failover reaches the (simulated) agents.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { join } from "node:path";
import { testStack } from "../support/stack";
import { CASES, Workload } from "./failover-cases";
import { HaTopology } from "./ha-topology";

// Its own ports (57450-57499) and state, apart from the bench's and from the shared test stack.
const topology = new HaTopology(join(testStack.stateDir, "ha"), Number(process.env.FLOTILLA_TEST_HA_PORT_BASE ?? 57450));
let workload: Workload;

// Opt-in (FLOTILLA_HA_TESTS=1) until a flaky step is found: in one clean-clone CI run of three,
// the Postgres case's repair (`ha.sh pg-rejoin`, making the old primary a standby again) exited
// non-zero; the case's own checks had run. bench:failover runs the same cases.
describe.skipIf(process.env.FLOTILLA_HA_TESTS !== "1")("HA control plane failover", () => {
  beforeAll(async () => {
    topology.up();
    workload = new Workload(topology);
    await workload.start();
  }, 300_000);

  afterAll(async () => {
    await workload?.stop();
    topology.down();
  }, 120_000);

  for (const c of CASES) {
    it(`${c.name}: nothing lost, nothing doubled`, async () => {
      const r = await workload.run(c);
      expect(r).toMatchObject({ lostChanges: 0, doubledContainers: 0, converged: true });
    }, 300_000);
  }
});
