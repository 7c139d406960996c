import type { Command } from "commander";
import type { ApiEvent as StreamEvent } from "@flotilla/api-types";
import { sseJson } from "@flotilla/sse";
import { ApiClient, loadCtlConfig } from "../client";
import { out } from "../output";

/** Reads a text/event-stream body (Node's fetch body is async-iterable) and yields each event's JSON data. */
export function readSse<T>(body: ReadableStream<Uint8Array>): AsyncGenerator<T> {
  return sseJson<T>(body as unknown as AsyncIterable<Uint8Array>);
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
    .description("follow the control plane's live event stream (Ctrl-C to stop)")
    .option("--since <id>", "replay events after this id first")
    .option("--kind <kinds>", "comma-separated kinds to show (machine,node,service,task,token)")
    .option("--json", "print one JSON object per line")
    .action(async (opts: { since?: string; kind?: string; json?: boolean }) => {
      const q = new URLSearchParams();
      if (opts.since) q.set("since", opts.since);
      if (opts.kind) q.set("kind", opts.kind);
      const res = await new ApiClient(loadCtlConfig()).raw("GET", `/api/v1/events${q.size ? `?${q}` : ""}`, undefined, "text/event-stream");
      for await (const e of readSse<StreamEvent>(res.body!)) out(opts.json ? JSON.stringify(e) : formatEvent(e));
    });
}
