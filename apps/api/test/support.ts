// Boots the real control plane (Fastify, Prisma, BullMQ) on a fresh database and Redis prefix.
import type { ConsoleLogger } from "@nestjs/common";
import { inject } from "vitest";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadConfig, type AppConfig } from "../src/config/config";
import { start, type Running } from "../src/bootstrap";
import { JoinService } from "../src/join/join.service";
import { createTestDatabase, type TestDatabase } from "../../../test/support/database";
import { testQueuePrefix } from "../../../test/support/queue-prefix";

export interface TestApi {
  config: AppConfig;
  running: Running;
  url: string;
  token: string;
  db: TestDatabase;
  fetch(path: string, init?: RequestInit & { token?: string | null }): Promise<Response>;
  stop(): Promise<void>;
}

/** `logger`: where the API logs (none by default; a test looking for what must never be logged passes its own). */
export async function startTestApi(env: Record<string, string> = {}, logger?: ConsoleLogger): Promise<TestApi> {
  return startTestApiOn(await createTestDatabase(), inject("redisUrl"), env, logger);
}

/** The same on a given database and Redis (a suite's own, for fault tests). */
export async function startTestApiOn(
  db: TestDatabase,
  redisUrl: string,
  env: Record<string, string> = {},
  logger?: ConsoleLogger,
): Promise<TestApi> {
  const configDir = mkdtempSync(join(tmpdir(), "flotilla-api-test-"));
  const config = loadConfig({
    DATABASE_URL: db.url,
    REDIS_URL: redisUrl,
    FLOTILLA_PORT: "0",
    FLOTILLA_CONFIG_DIR: configDir,
    // Each suite gets its own queues in the shared Redis.
    FLOTILLA_QUEUE_PREFIX: testQueuePrefix("t"),
    FLOTILLA_LOG_LEVEL: "warn",
    ...env,
  });
  const running = await start(config, { logger: logger ?? false });
  const url = running.url!;
  const token = (JSON.parse(readFileSync(join(configDir, "config.json"), "utf8")) as { token: string }).token;
  const api: TestApi = {
    config,
    running,
    url,
    token,
    db,
    fetch: (path, init = {}) => {
      const headers = new Headers(init.headers);
      const t = init.token === undefined ? token : init.token;
      if (t !== null) headers.set("authorization", `Bearer ${t}`);
      if (init.body && !headers.has("content-type")) headers.set("content-type", "application/json");
      return fetch(url + path, { ...init, headers });
    },
    stop: async () => {
      await running.close();
      await db.drop();
    },
  };
  return api;
}

/** The agent token machine `machine`'s agent gets by trading the join token it was issued, as an agent does. */
export async function agentTokenFor(api: TestApi, machine: string): Promise<string> {
  const { token } = await api.running.app.get(JoinService).issue(machine);
  const res = await api.fetch("/api/v1/nodes/join", {
    method: "POST",
    body: JSON.stringify({ joinToken: token, hostname: machine }),
    token: null,
  });
  return ((await res.json()) as { token: string }).token;
}
