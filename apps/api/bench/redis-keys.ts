// A bench run's queues and channels live under a prefix of its own in the test stack's Redis.
// Left there, they added up over runs (183,000 keys and 300 MB after a day of benches), in the
// Redis the test suites use too.
import IORedis from "ioredis";

/** Deletes every key under `prefix:`; returns how many. */
export async function dropKeys(url: string, prefix: string): Promise<number> {
  const redis = new IORedis(url, { lazyConnect: true, maxRetriesPerRequest: 2 });
  await redis.connect();
  let dropped = 0;
  try {
    let cursor = "0";
    do {
      const [next, keys] = await redis.scan(cursor, "MATCH", `${prefix}:*`, "COUNT", 1000);
      cursor = next;
      if (keys.length) dropped += await redis.unlink(...keys);
    } while (cursor !== "0");
  } finally {
    redis.disconnect();
  }
  return dropped;
}
