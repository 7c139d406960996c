// The live event stream, read with fetch() rather than EventSource: EventSource cannot send an
// Authorization header, and the token must not go in the URL. Resumes with `since` after a drop,
// so nothing that happened while disconnected is missed.
import type { ApiEvent } from "@flotilla/api-types";
import { SseDecoder } from "@flotilla/sse";
import { Api, ApiError } from "./client";

export type StreamStatus = "connecting" | "live" | "reconnecting" | "stopped";

/** Splits a text/event-stream body into the JSON `data` of each event. */
export async function* readSse(body: ReadableStream<Uint8Array>, signal: AbortSignal): AsyncGenerator<ApiEvent> {
  const reader = body.getReader();
  const decoder = new SseDecoder();
  const cancel = () => void reader.cancel().catch(() => undefined);
  signal.addEventListener("abort", cancel, { once: true });
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      for (const data of decoder.push(value)) yield JSON.parse(data) as ApiEvent;
    }
  } finally {
    signal.removeEventListener("abort", cancel);
    cancel();
  }
}

export interface StreamHandlers {
  onEvent(e: ApiEvent): void;
  onStatus(s: StreamStatus): void;
  /** After a reconnect: lists may have changed beyond what the replay says (the backlog is capped). */
  onResync(): void;
}

/** Keeps one event stream open until `stop()`; reconnects with back-off. */
export function openEventStream(api: Api, h: StreamHandlers): { stop(): void } {
  const ac = new AbortController();
  let lastId: string | undefined;
  const run = async () => {
    let delay = 500;
    let first = true;
    while (!ac.signal.aborted) {
      h.onStatus(first ? "connecting" : "reconnecting");
      try {
        const res = await api.raw("GET", `/api/v1/events${lastId ? `?since=${lastId}` : ""}`, {
          accept: "text/event-stream",
          signal: ac.signal,
        });
        h.onStatus("live");
        if (!first) h.onResync();
        first = false;
        delay = 500;
        for await (const e of readSse(res.body!, ac.signal)) {
          lastId = e.id;
          h.onEvent(e);
        }
      } catch (e) {
        // A 401 means the session is over (Api already reported it); anything else is a blip.
        if (e instanceof ApiError && e.status === 401) break;
      }
      if (ac.signal.aborted) break;
      h.onStatus("reconnecting");
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(delay * 2, 5_000);
    }
    h.onStatus("stopped");
  };
  void run();
  return { stop: () => ac.abort() };
}
