// `GET /services/{id}/logs`: the logs of every task container of a service, read from the agents
// (demultiplexed by engine-client), merged as they arrive, each line prefixed by its task. Finished
// tasks, whose containers are gone, come first, from the log each kept (dispatch/task-logs.ts).
import { Injectable, Logger } from "@nestjs/common";
import { PassThrough, type Readable } from "node:stream";
import { EngineClients } from "../dispatch/engine-clients";
import { PrismaService } from "../database/prisma.service";
import { splitLines } from "./log-lines";
import { taskName } from "./mapping";
import { ServicesRepository } from "./services.repository";

/** Options of a service log read. */
export interface ServiceLogOptions {
  follow: boolean;
  tail?: number;
  /** Aborted when the client goes away: every agent stream is closed then. */
  signal: AbortSignal;
}

function waitForDrain(out: PassThrough, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      out.off("drain", done);
      out.off("close", done);
      signal.removeEventListener("abort", done);
      resolve();
    };
    out.once("drain", done);
    out.once("close", done);
    signal.addEventListener("abort", done, { once: true });
  });
}

@Injectable()
export class LogsService {
  private readonly logger = new Logger("logs");

  constructor(
    private readonly prisma: PrismaService,
    private readonly repo: ServicesRepository,
    private readonly engines: EngineClients,
  ) {}

  /** The kept logs of the service's finished tasks, oldest task first. */
  private kept(serviceId: string) {
    return this.prisma.taskLog.findMany({
      where: { task: { serviceId } },
      include: { task: { include: { node: true } } },
      orderBy: { task: { createdAt: "asc" } },
    });
  }

  async stream(ref: string, opts: ServiceLogOptions): Promise<Readable> {
    const service = await this.repo.find(ref);
    const tasks = await this.prisma.task.findMany({
      where: {
        serviceId: service.id,
        containerId: { not: null },
        // Stopped tasks' containers are removed by dispatch: only wanted tasks have logs to read,
        // and a task whose log was kept has no container any more.
        desiredState: "RUNNING",
        log: { is: null },
        node: { engineUrl: { not: null }, status: "READY" },
        // Following only makes sense for containers that can still write.
        ...(opts.follow ? { state: { in: ["STARTING", "RUNNING"] } } : {}),
      },
      include: { node: true },
      orderBy: [{ slot: "asc" }, { createdAt: "asc" }],
    });
    const out = new PassThrough();
    for (const k of await this.kept(service.id)) {
      const prefix = `${taskName(service.name, k.task)}@${k.task.node?.hostname ?? "(node removed)"} | `;
      const lines = splitLines("", Buffer.from(k.data).toString("utf8"));
      const all = lines.partial ? [...lines.lines, lines.partial] : lines.lines;
      for (const line of opts.tail !== undefined ? all.slice(Math.max(0, all.length - opts.tail)) : all) out.write(prefix + line + "\n");
    }
    const readers = tasks.map(async (t) => {
      const prefix = `${taskName(service.name, t)}@${t.node!.hostname} | `;
      const partial = { stdout: "", stderr: "" };
      try {
        const engine = await this.engines.forNode(t.node!);
        for await (const chunk of engine.logs(t.containerId!, {
          follow: opts.follow,
          ...(opts.tail !== undefined ? { tail: opts.tail } : {}),
          signal: opts.signal,
        })) {
          const split = splitLines(partial[chunk.stream], chunk.data.toString("utf8"));
          partial[chunk.stream] = split.partial;
          let full = false;
          for (const line of split.lines) full = !out.write(prefix + line + "\n") || full;
          // Back-pressure: a slow client pauses the agents' streams instead of filling memory.
          if (full && !opts.signal.aborted) await waitForDrain(out, opts.signal);
        }
        for (const rest of Object.values(partial)) if (rest) out.write(prefix + rest + "\n");
      } catch (e) {
        if (!opts.signal.aborted) {
          this.logger.warn(`logs of ${t.id}: ${(e as Error).message}`);
          out.write(`${prefix}(logs unavailable: ${(e as Error).message})\n`);
        }
      }
    });
    void Promise.allSettled(readers).then(() => out.end());
    return out;
  }
}
