// Test runs and benches share the test stack's Redis, each process under a queue prefix of its
// own. Left there, their keys added up over runs (48,703 keys of test suites, 183,000 of benches
// after a day), so every prefix names its run (testQueuePrefix) and is dropped: a bench's at
// its end, a test run's by its global teardown, and those of runs killed before their teardown
// by the next run's global setup. (No vitest here: benches and `npm run fuzz` use it too.)
import IORedis from "ioredis";
import { running } from "./leftovers";

// `ft-<run>-<tag><random>` (queue-prefix.ts): the run is the vitest process's pid in base 36.
const RUN_PREFIX = /^ft-([0-9a-z]+)-/;

/** The run id global setup provides to test files: its own pid, in base 36. */
export function testRunId(pid = process.pid): string {
  return pid.toString(36);
}

/** Deletes every key matching `pattern` (a SCAN pattern); returns how many. */
export async function dropKeys(url: string, pattern: string, keep: (key: string) => boolean = () => false): Promise<number> {
  const redis = new IORedis(url, { lazyConnect: true, maxRetriesPerRequest: 2 });
  await redis.connect();
  let dropped = 0;
  try {
    let cursor = "0";
    do {
      const [next, keys] = await redis.scan(cursor, "MATCH", pattern, "COUNT", 1000);
      cursor = next;
      const doomed = keys.filter((k) => !keep(k));
      if (doomed.length) dropped += await redis.unlink(...doomed);
    } while (cursor !== "0");
  } finally {
    redis.disconnect();
  }
  return dropped;
}

/** Deletes the keys of test runs whose process is gone (a run beside this one keeps its own). */
export function dropDeadRunsKeys(url: string): Promise<number> {
  return dropKeys(url, "ft-*", (key) => {
    const run = RUN_PREFIX.exec(key)?.[1];
    return run === undefined || running(parseInt(run, 36));
  });
}

/** Deletes the keys of the run `runId`. */
export function dropRunKeys(url: string, runId: string): Promise<number> {
  return dropKeys(url, `ft-${runId}-*`);
}
