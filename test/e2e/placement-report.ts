// What an e2e prints when a service's tasks are not where it expected them: every task (node,
// state, desired state, the scheduler's message, the error), every node (status, availability,
// resources, last heartbeat, live tasks), the service's update state, the events of its tasks and
// of the nodes, and what the API logged at warn and above. A placement failure in CI is then
// explained by its own output instead of needing a rerun.
import { ConsoleLogger, type LogLevel } from "@nestjs/common";
import pg from "pg";
import type { Result } from "./support";

/** Keeps the API's warnings and errors (dispatch failures, node monitor decisions) for a report. */
export class WarningLog extends ConsoleLogger {
  readonly lines: string[] = [];
  constructor() {
    super({ json: true, colors: false, logLevels: ["fatal", "error", "warn"] });
  }
  protected override printMessages(messages: unknown[], context?: string, logLevel?: LogLevel): void {
    this.lines.push(
      `${new Date().toISOString()} ${logLevel} [${context}] ${messages.map((m) => (typeof m === "string" ? m : JSON.stringify(m))).join(" ")}`,
    );
  }
}

const pick = (text: string): unknown => {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return text;
  }
};

/** The report, as one string: `ctl` answers, the events from the database, the API's warnings. */
export async function placementReport(
  service: string,
  ctl: (args: string[]) => Promise<Result>,
  databaseUrl: string,
  warnings: readonly string[],
): Promise<string> {
  const tasks = pick((await ctl(["service", "ps", service, "--json"])).stdout) as Record<string, unknown>[] | string;
  const nodes = pick((await ctl(["node", "ls", "--json"])).stdout) as Record<string, unknown>[] | string;
  const inspected = pick((await ctl(["service", "inspect", service])).stdout) as { updateState?: unknown }[] | string;
  const db = new pg.Client({ connectionString: databaseUrl });
  let events: string[];
  try {
    await db.connect();
    const r = await db.query<{ at: Date; kind: string; action: string; data: unknown }>(
      `SELECT at, kind, action, data FROM "Event" WHERE kind IN ('task', 'node', 'service') ORDER BY id`,
    );
    events = r.rows.map((e) => `${e.at.toISOString()} ${e.kind} ${e.action} ${JSON.stringify(e.data)}`);
  } catch (e) {
    events = [`(events unreadable: ${(e as Error).message})`];
  } finally {
    await db.end().catch(() => undefined);
  }
  const lines = [
    `tasks of ${service}:`,
    ...(Array.isArray(tasks)
      ? tasks.map((t) =>
          JSON.stringify({
            name: t.name,
            node: t.nodeHostname,
            state: t.state,
            desired: t.desiredState,
            message: t.message,
            error: t.error,
            createdAt: t.createdAt,
            updatedAt: t.updatedAt,
          }),
        )
      : [String(tasks)]),
    "nodes:",
    ...(Array.isArray(nodes)
      ? nodes.map((n) =>
          JSON.stringify({
            hostname: n.hostname,
            status: n.status,
            availability: n.availability,
            resources: n.resources,
            lastHeartbeatAt: n.lastHeartbeatAt,
            createdAt: n.createdAt,
            tasks: n.tasks,
          }),
        )
      : [String(nodes)]),
    `update state: ${Array.isArray(inspected) ? JSON.stringify(inspected[0]?.updateState ?? null) : String(inspected)}`,
    "events:",
    ...events,
    "API warnings:",
    ...warnings,
  ];
  return lines.join("\n");
}
