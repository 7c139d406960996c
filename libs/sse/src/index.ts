// Server-Sent Events (text/event-stream) as the API streams them at GET /api/v1/events: one JSON
// `data` per event. A parser only — no I/O, no imports — shared by ctl (Node) and the console
// (browser), which each keep their own way of reading the response body.

/**
 * Incremental decoder of a text/event-stream body. Feed it the body's bytes as they arrive; it
 * returns the `data` of every event they complete (multi-line data joined with "\n", as the
 * specification says). Other fields (`id:`, `event:`) and comment lines (`: keep-alive`) are
 * skipped: the API puts everything a client needs, the id included, in the JSON data.
 */
export class SseDecoder {
  private readonly text = new TextDecoder();
  private buffer = "";

  push(chunk: Uint8Array): string[] {
    // The specification allows CRLF, LF and CR line ends; normalise so one frame splitter serves
    // all. A CR at the very end may be half of a CRLF: keep it for the next chunk.
    this.buffer += this.text.decode(chunk, { stream: true });
    const held = this.buffer.endsWith("\r") ? "\r" : "";
    const text = (held ? this.buffer.slice(0, -1) : this.buffer).replace(/\r\n?/g, "\n");
    const frames = text.split("\n\n");
    this.buffer = frames.pop()! + held;
    const out: string[] = [];
    for (const frame of frames) {
      const data = frame
        .split("\n")
        .filter((line) => line.startsWith("data:"))
        // One space after the colon belongs to the syntax; anything more is data.
        .map((line) => line.slice(5).replace(/^ /, ""))
        .join("\n");
      if (data) out.push(data);
    }
    return out;
  }
}

/** The JSON `data` of each event of a text/event-stream body, parsed, in order. */
export async function* sseJson<T>(chunks: AsyncIterable<Uint8Array>): AsyncGenerator<T> {
  const decoder = new SseDecoder();
  for await (const chunk of chunks) for (const data of decoder.push(chunk)) yield JSON.parse(data) as T;
}
