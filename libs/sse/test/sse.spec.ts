import { describe, expect, it } from "vitest";
import { SseDecoder, sseJson } from "../src";

const bytes = (s: string) => new TextEncoder().encode(s);

describe("SseDecoder", () => {
  it("returns each event's data, skipping ids, event names and comments", () => {
    const d = new SseDecoder();
    expect(d.push(bytes(': keep-alive\n\nid: 7\nevent: machine\ndata: {"id":"7"}\n\ndata: {"id":"8"}\n\n'))).toEqual([
      '{"id":"7"}',
      '{"id":"8"}',
    ]);
  });

  it("joins multi-line data and removes only the one space after the colon", () => {
    expect(new SseDecoder().push(bytes("data:a\ndata:  b\ndata\n\n"))).toEqual(["a\n b"]);
  });

  it("holds an incomplete event until it completes, whatever the chunking", () => {
    const text = 'data: {"n":1}\r\n\r\ndata: {"n":2}\r\rdata: {"n":"é"}\n\n';
    const all = bytes(text);
    // Every split point, including inside CRLF and inside a multi-byte character.
    for (let at = 0; at <= all.length; at++) {
      const d = new SseDecoder();
      expect([...d.push(all.slice(0, at)), ...d.push(all.slice(at))], `split at ${at}`).toEqual(['{"n":1}', '{"n":2}', '{"n":"é"}']);
    }
  });

  it("sseJson parses each event of a chunked body", async () => {
    async function* body() {
      yield bytes('data: {"kind":"node"');
      yield bytes('}\n\ndata: {"kind":"task"}\n\n');
    }
    const seen: unknown[] = [];
    for await (const e of sseJson<{ kind: string }>(body())) seen.push(e);
    expect(seen).toEqual([{ kind: "node" }, { kind: "task" }]);
  });
});
