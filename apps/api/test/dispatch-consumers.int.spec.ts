import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Job } from "bullmq";
import { randomUUID } from "node:crypto";
import { JobHandlers } from "../src/queues/job-handlers";
import { QUEUE } from "../src/queues/queue-names";
import { QueuesService } from "../src/queues/queues.service";
import { startTestApi, type TestApi } from "./support";

// What the worker's dispatch consumers do with their jobs while reconciles keep its event loop
// busy. The loop here is made busy on purpose: every turn takes at least BUSY_TURN_MS.
const NODES = 64;
const BUSY_TURN_MS = 190;
// The workers' lock on a job (workers.service.ts): a job that starts later than this after it
// was claimed may already have been handed to another worker as stalled.
const LOCK_MS = 10_000;

describe("dispatch consumers on a busy event loop", () => {
  let api: TestApi;
  const claimToStartMs: number[] = [];
  let allStarted!: () => void;
  const everyoneIn = new Promise<void>((r) => (allStarted = r));

  beforeAll(async () => {
    api = await startTestApi({ FLOTILLA_ROLE: "all" });
    // The queue machinery is under test: each job records how long after its claim (BullMQ's
    // processedOn) it started, and holds its slot until all have started.
    api.running.app.get(JobHandlers).replace(QUEUE.dispatch, async (job: Job) => {
      claimToStartMs.push(Date.now() - job.processedOn!);
      if (claimToStartMs.length === NODES) allStarted();
      await everyoneIn;
    });
  });
  afterAll(() => api?.stop());

  it("runs 64 nodes' dispatches at once, each started long before its claim's lock lapses", async () => {
    const hog = setInterval(() => {
      const until = Date.now() + BUSY_TURN_MS;
      while (Date.now() < until);
    }, 1);
    try {
      const nodes = Array.from({ length: NODES }, () => ({ nodeId: randomUUID(), start: true, stop: false }));
      await api.running.app.get(QueuesService).enqueueDispatch(nodes, "test");
      // One worker of 64 claims all 64 one loop turn after another before starting any: 64
      // turns of 190 ms, past the lock. Eight of eight claim side by side: about eight turns.
      await Promise.race([
        everyoneIn,
        new Promise((_, reject) => setTimeout(() => reject(new Error(`only ${claimToStartMs.length} of ${NODES} started`)), 30_000)),
      ]);
    } finally {
      clearInterval(hog);
    }
    expect(claimToStartMs).toHaveLength(NODES);
    expect(Math.max(...claimToStartMs)).toBeLessThan(LOCK_MS / 2);
  }, 40_000);
});
