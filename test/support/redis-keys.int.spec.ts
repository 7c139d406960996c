// The test stack's Redis keeps no keys of finished runs: a run's prefixes name it, and what a
// dead run left is dropped by the next run's setup, while a live run's keys stay.
import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import IORedis from "ioredis";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { testQueuePrefix } from "./queue-prefix";
import { dropDeadRunsKeys, dropRunKeys, testRunId } from "./redis-keys";

/** A pid that no process has now: one of a child that has exited. */
function deadPid(): number {
  const { pid } = spawnSync("true");
  return pid!;
}

describe("test runs' Redis keys", () => {
  let redis: IORedis;
  const tag = randomBytes(3).toString("hex");

  beforeAll(async () => {
    redis = new IORedis(inject("redisUrl"));
  });

  afterAll(async () => {
    redis?.disconnect();
  });

  it("names this run in every queue prefix", () => {
    expect(testQueuePrefix("t")).toMatch(new RegExp(`^ft-${inject("testRunId")}-t[0-9a-f]{6}$`));
  });

  it("drops the keys of runs that are gone and keeps those of runs still going", async () => {
    const dead = `ft-${testRunId(deadPid())}-${tag}`;
    const live = `ft-${inject("testRunId")}-${tag}`;
    const other = `flotilla-${tag}`;
    await redis.set(`${dead}:bull:a`, "1");
    await redis.hset(`${dead}:bull:b`, "k", "v");
    await redis.set(`${live}:bull:a`, "1");
    await redis.set(`${other}:bull:a`, "1");
    try {
      expect(await dropDeadRunsKeys(inject("redisUrl"))).toBeGreaterThanOrEqual(2);
      expect(await redis.exists(`${dead}:bull:a`, `${dead}:bull:b`)).toBe(0);
      expect(await redis.exists(`${live}:bull:a`)).toBe(1);
      // Not a test run's prefix: never touched.
      expect(await redis.exists(`${other}:bull:a`)).toBe(1);
    } finally {
      await redis.del(`${live}:bull:a`, `${other}:bull:a`);
    }
  });

  it("drops a run's own keys, and no other run's", async () => {
    const mine = `ft-zz${tag}-x`;
    const theirs = `ft-zy${tag}-x`;
    await redis.set(`${mine}:q`, "1");
    await redis.set(`${theirs}:q`, "1");
    try {
      expect(await dropRunKeys(inject("redisUrl"), `zz${tag}`)).toBe(1);
      expect(await redis.exists(`${mine}:q`, `${theirs}:q`)).toBe(1);
    } finally {
      await redis.del(`${theirs}:q`);
    }
  });
});
