// Finished tasks keep the end of their log: dispatch removes a container once its task is over
// (stopped, or exited and folded as a stray), and its log file goes with it. Just before the
// removal the last KEPT_LOG_BYTES are read from the agent and stored with the task (TaskLog),
// pruned with it, so `ctl service logs` still shows why a task failed.
import { Injectable, Logger } from "@nestjs/common";
import type { EngineClient } from "@flotilla/engine-client";
import { PrismaService } from "../database/prisma.service";

/** What a task keeps of its log. */
export const KEPT_LOG_BYTES = 256 * 1024;
/** Lines asked of the agent (the byte bound applies after). */
const KEPT_LOG_LINES = 5000;
/** A log read must not hold up the removal for long. */
const READ_TIMEOUT_MS = 10_000;

/** The last `max` bytes of `data`, starting at a line. Pure. */
export function lastLines(data: Buffer, max = KEPT_LOG_BYTES): Buffer {
  if (data.length <= max) return data;
  const cut = data.subarray(data.length - max);
  const nl = cut.indexOf(0x0a);
  return nl >= 0 ? cut.subarray(nl + 1) : cut;
}

/** The end of a container's log (stdout and stderr interleaved as written); undefined when it cannot be read. */
export async function readLogTail(engine: EngineClient, containerId: string): Promise<Buffer | undefined> {
  try {
    const chunks: Buffer[] = [];
    for await (const chunk of engine.logs(containerId, { tail: KEPT_LOG_LINES, signal: AbortSignal.timeout(READ_TIMEOUT_MS) }))
      chunks.push(chunk.data);
    return lastLines(Buffer.concat(chunks));
  } catch {
    // The container may be gone already, or the agent slow: the removal goes on without the log.
    return undefined;
  }
}

@Injectable()
export class TaskLogs {
  private readonly logger = new Logger("task-logs");

  constructor(private readonly prisma: PrismaService) {}

  /** Stores a finished task's log (a repeated removal replaces it). A task already pruned keeps nothing. */
  async keep(taskId: string, data: Buffer): Promise<void> {
    await this.prisma.sql
      .query(
        `INSERT INTO "TaskLog" ("taskId", data) SELECT id, $2 FROM "Task" WHERE id = $1::uuid
         ON CONFLICT ("taskId") DO UPDATE SET data = EXCLUDED.data`,
        [taskId, data],
      )
      .catch((e: unknown) => this.logger.warn(`keep the log of task ${taskId}: ${(e as Error).message}`));
  }

  /** The tasks (by container) whose logs are worth keeping: those still in the database. */
  async tasksOf(containerIds: readonly string[]): Promise<Map<string, string>> {
    if (containerIds.length === 0) return new Map();
    const rows = await this.prisma.sql.query<{ id: string; containerId: string }>(
      `SELECT id::text AS id, "containerId" FROM "Task" WHERE "containerId" = ANY($1::text[])`,
      [[...containerIds]],
    );
    return new Map(rows.map((r) => [r.containerId, r.id]));
  }
}
