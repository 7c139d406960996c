// Docker's multiplexed log stream (containers without a TTY): each frame is an 8-byte header —
// stream type (0 stdin, 1 stdout, 2 stderr), three zero bytes, payload length as big-endian
// uint32 — then the payload. Frames may be split across network chunks, so bytes are buffered
// until a whole frame is there.
import type { LogChunk } from "./types";

const HEADER = 8;

/** Incremental demultiplexer: push network chunks in, take whole frames out. */
export class LogDemuxer {
  private buf: Buffer = Buffer.alloc(0);

  /** Adds bytes and returns every frame now complete, in order. */
  push(chunk: Buffer): LogChunk[] {
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    const out: LogChunk[] = [];
    while (this.buf.length >= HEADER) {
      const size = this.buf.readUInt32BE(4);
      if (this.buf.length < HEADER + size) break;
      const kind = this.buf[0];
      out.push({ stream: kind === 2 ? "stderr" : "stdout", data: this.buf.subarray(HEADER, HEADER + size) });
      this.buf = this.buf.subarray(HEADER + size);
    }
    return out;
  }

  /** Bytes of an unfinished frame left at the end of the stream. */
  get pending(): number {
    return this.buf.length;
  }
}

/** Encodes one frame (for agents and test doubles that serve logs). */
export function muxFrame(stream: "stdout" | "stderr", data: Buffer | string): Buffer {
  const payload = typeof data === "string" ? Buffer.from(data) : data;
  const header = Buffer.alloc(HEADER);
  header[0] = stream === "stderr" ? 2 : 1;
  header.writeUInt32BE(payload.length, 4);
  return Buffer.concat([header, payload]);
}
