// Integration tests run against a real Postgres and Redis. This starts them when they are not
// running (the same script as the embedded default, on its own ports and data dir) and builds a
// migrated template database that every suite clones.
import type { TestProject } from "vitest/node";
import pg from "pg";
import { adminUrl, redisUrl, stack, TEMPLATE_DB } from "./stack";
import { deployMigrations } from "./migrations";
import { reclaimDeadRunBridges } from "./leftovers";
import { dropDeadRunsKeys, dropRunKeys, testRunId } from "./redis-keys";

export default async function setup(project: TestProject) {
  // A run killed mid-way keeps its machines' bridges, whose /24s this run's machines need.
  const reclaimed = await reclaimDeadRunBridges();
  if (reclaimed.length) console.log(`global setup: removed bridges left by test runs that are gone: ${reclaimed.join(", ")}`);
  stack("up");
  const admin = new pg.Client({ connectionString: adminUrl() });
  await admin.connect();
  try {
    // Rebuilt each run so a new migration is always in the template.
    await admin.query(`DROP DATABASE IF EXISTS ${TEMPLATE_DB} WITH (FORCE)`);
    await admin.query(`CREATE DATABASE ${TEMPLATE_DB}`);
  } finally {
    await admin.end();
  }
  await deployMigrations(adminUrl(TEMPLATE_DB));
  const dropped = await dropDeadRunsKeys(redisUrl());
  if (dropped) console.log(`global setup: removed ${dropped} Redis keys of test runs that are gone`);
  const runId = testRunId();
  project.provide("redisUrl", redisUrl());
  project.provide("testRunId", runId);
  return async () => {
    await dropRunKeys(redisUrl(), runId);
  };
}

declare module "vitest" {
  export interface ProvidedContext {
    redisUrl: string;
    /** Names this run in its queue prefixes (testQueuePrefix), so that its keys are dropped with it. */
    testRunId: string;
  }
}
