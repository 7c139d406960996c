// Test files' queue prefixes name their run, so that the run's global teardown drops their keys
// from the shared Redis (redis-keys.ts).
import { randomBytes } from "node:crypto";
import { inject } from "vitest";

/** A queue prefix (FLOTILLA_QUEUE_PREFIX) for one test's control plane: `ft-<run>-<tag><random>`. */
export function testQueuePrefix(tag: string): string {
  return `ft-${inject("testRunId")}-${tag}${randomBytes(3).toString("hex")}`;
}
