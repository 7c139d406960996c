import type { Command } from "commander";
import type { ApiEvent as StreamEvent } from "@flotilla/api-types";
import { sseJson } from "@flotilla/sse";
import { ApiClient, loadCtlConfig } from "../client";
import { out } from "../output";

/** Reads a text/event-stream body (Node's fetch body is async-iterable) and yields each event's JSON data. */
export function readSse<T>(body: ReadableStream<Uint8Array>): AsyncGenerator<T> {
  return sseJson<T>(body as unknown as AsyncIterable<Uint8Array>);
}

/**
 * The event stream from `query`'s `since`, across replicas: when the stream breaks or ends (its
 * replica died, or drained on SIGTERM), it is opened again after the last event seen, through the
 * client, which goes to the next replica when this one does not answer. Ends only by throwing the
 * client's error when no replica answers, or when the caller stops reading.
 */
export async function* followEvents<T extends { id: string }>(client: ApiClient, query: URLSearchParams): AsyncGenerator<T> {
  let since = query.get("since") ?? undefined;
  for (let attempt = 0; ; attempt++) {
    // A replica that keeps closing streams at once must not make this a busy loop.
    if (attempt > 0) await new Promise((r) => setTimeout(r, 250));
    const q = new URLSearchParams(query);
    if (since) q.set("since", since);
    const res = await client.raw("GET", `/api/v1/events${q.size ? `?${q}` : ""}`, undefined, "text/event-stream");
    try {
      for await (const e of readSse<T>(res.body!)) {
        since = e.id;
        yield e;
      }
    } catch {
      // The connection broke mid-stream: open it again (after `since`, so nothing is missed).
    } finally {
      await res.body?.cancel().catch(() => undefined);
    }
  }
}

export function formatEvent(e: StreamEvent): string {
  const detail = Object.entries(e.data)
    .map(([k, v]) => `${k}=${typeof v === "string" ? v : JSON.stringify(v)}`)
    .join(" ");
  return `${e.at} ${e.kind} ${e.action}${e.subjectId ? ` ${e.subjectId}` : ""}${detail ? ` (${detail})` : ""}`;
}

export function registerEvents(program: Command): void {
  program
    .command("events")
    .description(
      "follow the control plane's live event stream (Ctrl-C to stop); when the replica serving it goes away, it resumes on the next one after the last event shown",
    )
    .option("--since <id>", "replay events after this id first")
    .option("--kind <kinds>", "comma-separated kinds to show (machine,node,service,task,token)")
    .option("--json", "print one JSON object per line")
    .action(async (opts: { since?: string; kind?: string; json?: boolean }) => {
      const q = new URLSearchParams();
      if (opts.since) q.set("since", opts.since);
      if (opts.kind) q.set("kind", opts.kind);
      for await (const e of followEvents<StreamEvent>(new ApiClient(loadCtlConfig()), q))
        out(opts.json ? JSON.stringify(e) : formatEvent(e));
    });
}
