/**
 * Container output for the Engine API: the shim's json-file log read back, filtered (streams,
 * since/until, tail) and framed in Docker's multiplexed stream format — an 8-byte header
 * (stream 1 = stdout, 2 = stderr; three zero bytes; big-endian uint32 length) before each chunk.
 * Following tails the file until the container stops.
 */
import { watch } from "node:fs";
import * as fs from "node:fs/promises";

export interface LogRecord {
  log: string;
  stream: "stdout" | "stderr";
  time: string;
}

export interface LogQuery {
  stdout: boolean;
  stderr: boolean;
  timestamps: boolean;
  /** Last N records; undefined for all. */
  tail?: number;
  sinceNano?: number;
  untilNano?: number;
}

/** One frame of Docker's multiplexed stream. */
export function frame(stream: "stdout" | "stderr", payload: Buffer | string): Buffer {
  const body = typeof payload === "string" ? Buffer.from(payload, "utf8") : payload;
  const header = Buffer.alloc(8);
  header[0] = stream === "stdout" ? 1 : 2;
  header.writeUInt32BE(body.length, 4);
  return Buffer.concat([header, body]);
}

/** RFC 3339 with up to nanoseconds → nanoseconds since the epoch (to ~256 ns: a float). */
export function timeNano(rfc3339: string): number {
  const ms = Date.parse(rfc3339);
  const frac = /\.(\d+)Z$/.exec(rfc3339)?.[1] ?? "";
  const subMs = Number(frac.padEnd(9, "0").slice(3, 9));
  return Math.floor(ms) * 1e6 + subMs;
}

/** Parses json-file lines; a torn or foreign line is skipped. */
export function parseRecords(lines: readonly string[]): LogRecord[] {
  const out: LogRecord[] = [];
  for (const line of lines) {
    if (!line) continue;
    try {
      const r = JSON.parse(line) as LogRecord;
      if (typeof r.log === "string" && (r.stream === "stdout" || r.stream === "stderr")) out.push(r);
    } catch {
      // a partial line being written, or garbage: not output
    }
  }
  return out;
}

/** Applies streams and time bounds; renders one frame per record. */
export function renderRecords(records: readonly LogRecord[], q: LogQuery): Buffer[] {
  const out: Buffer[] = [];
  for (const r of records) {
    if ((r.stream === "stdout" && !q.stdout) || (r.stream === "stderr" && !q.stderr)) continue;
    if (q.sinceNano !== undefined || q.untilNano !== undefined) {
      const t = timeNano(r.time);
      if (q.sinceNano !== undefined && t < q.sinceNano) continue;
      if (q.untilNano !== undefined && t > q.untilNano) continue;
    }
    out.push(frame(r.stream, q.timestamps ? `${r.time} ${r.log}` : r.log));
  }
  return out;
}

/** The log's complete lines from `from` on, and the offset after the last one. */
async function readFrom(path: string, from: number): Promise<{ lines: string[]; offset: number }> {
  let buf: Buffer;
  try {
    const fh = await fs.open(path, "r");
    try {
      const size = (await fh.stat()).size;
      buf = Buffer.alloc(Math.max(0, size - from));
      if (buf.length) await fh.read(buf, 0, buf.length, from);
    } finally {
      await fh.close();
    }
  } catch {
    return { lines: [], offset: from };
  }
  // Only complete lines count; a line still being written is picked up on the next read.
  const end = buf.lastIndexOf(0x0a) + 1;
  return { lines: buf.subarray(0, end).toString("utf8").split("\n"), offset: from + end };
}

/** The shim rotates the log into `<log>.1` (newest) .. `<log>.N`; oldest first. */
async function rotatedFiles(path: string): Promise<string[]> {
  const out: string[] = [];
  for (let i = 1; i <= 100; i++) {
    const p = `${path}.${i}`;
    if (
      !(await fs.stat(p).then(
        () => true,
        () => false,
      ))
    )
      break;
    out.unshift(p);
  }
  return out;
}

/**
 * Reads the log, its rotated files first: the complete lines (every one, or the last `tail`
 * lines, read backwards from the end so a large log is not read whole) and the offset in the
 * current file after the last one.
 */
export async function readLog(path: string, from = 0, tail?: number): Promise<{ lines: string[]; offset: number }> {
  if (tail === undefined) {
    const older: string[] = [];
    if (from === 0) for (const p of await rotatedFiles(path)) older.push(...(await readFrom(p, 0)).lines.filter(Boolean));
    const cur = await readFrom(path, from);
    return { lines: [...older, ...cur.lines], offset: cur.offset };
  }
  const offset = await completeEnd(path);
  const lines: string[] = [];
  for (const [p, end] of [[path, offset] as const, ...(await rotatedFiles(path)).reverse().map((f) => [f, Infinity] as const)]) {
    if (lines.length >= tail) break;
    lines.unshift(...(await lastLines(p, tail - lines.length, end)));
  }
  return { lines, offset };
}

/** The offset after the current file's last complete line. */
async function completeEnd(path: string): Promise<number> {
  try {
    const fh = await fs.open(path, "r");
    try {
      let pos = (await fh.stat()).size;
      const buf = Buffer.alloc(64 * 1024);
      while (pos > 0) {
        const start = Math.max(0, pos - buf.length);
        const { bytesRead } = await fh.read(buf, 0, pos - start, start);
        const nl = buf.subarray(0, bytesRead).lastIndexOf(0x0a);
        if (nl >= 0) return start + nl + 1;
        pos = start;
      }
      return 0;
    } finally {
      await fh.close();
    }
  } catch {
    return 0;
  }
}

/** Up to `n` complete lines before `end`, read backwards in chunks. */
async function lastLines(path: string, n: number, end: number): Promise<string[]> {
  if (n <= 0) return [];
  let fh;
  try {
    fh = await fs.open(path, "r");
  } catch {
    return [];
  }
  try {
    let pos = Math.min(end, (await fh.stat()).size);
    // A rotated file may end without a newline (a partial line flushed at exit): keep it.
    const chunks: Buffer[] = [];
    let newlines = 0;
    const chunk = 64 * 1024;
    while (pos > 0 && newlines <= n) {
      const start = Math.max(0, pos - chunk);
      const buf = Buffer.alloc(pos - start);
      await fh.read(buf, 0, buf.length, start);
      chunks.unshift(buf);
      for (const b of buf) if (b === 0x0a) newlines++;
      pos = start;
    }
    const lines = Buffer.concat(chunks).toString("utf8").split("\n").filter(Boolean);
    return lines.slice(-n);
  } finally {
    await fh.close();
  }
}

/** The size of the log now: where a follower that wants only new output starts. */
export async function logSize(path: string): Promise<number> {
  try {
    return (await fs.stat(path)).size;
  } catch {
    return 0;
  }
}

export interface FollowOptions {
  /** Resolves when no more output can come (the container stopped). */
  done: Promise<unknown>;
  /** Aborted when the client went away. */
  signal: AbortSignal;
}

/**
 * Sends the log's records from `offset` on, as they are appended, until `done` resolves (then a
 * last read catches what the shim wrote before it reported the exit) or the client aborts.
 * inotify says when to read; a slow poll covers filesystems where it does not.
 */
export async function followLog(path: string, offset: number, send: (records: LogRecord[]) => void, opts: FollowOptions): Promise<void> {
  let finished = false;
  void opts.done.then(() => (finished = true));
  let wake: () => void = () => {};
  const poke = () => wake();
  const dir = path.slice(0, path.lastIndexOf("/")) || "/";
  let watcher: ReturnType<typeof watch> | null = null;
  try {
    watcher = watch(dir, { persistent: false }, poke);
    watcher.on("error", () => {});
  } catch {
    // the directory is gone (container removed): the poll and `done` end us
  }
  opts.signal.addEventListener("abort", poke);
  void opts.done.then(poke);
  let ino = await fs.stat(path).then(
    (st) => st.ino,
    () => 0,
  );
  try {
    for (;;) {
      const wasFinished = finished;
      const now = await fs.stat(path).then(
        (st) => st,
        () => undefined,
      );
      if (now && ino && now.ino !== ino) {
        // Rotated since the last read: finish the old file (now <log>.1), then start the new one.
        const old = await fs.stat(`${path}.1`).then(
          (st) => st,
          () => undefined,
        );
        if (old?.ino === ino) {
          const rest = parseRecords((await readFrom(`${path}.1`, offset)).lines);
          if (rest.length && !opts.signal.aborted) send(rest);
        }
        offset = 0;
      }
      if (now) ino = now.ino;
      const next = await readFrom(path, offset);
      offset = next.offset;
      const records = parseRecords(next.lines);
      if (records.length && !opts.signal.aborted) send(records);
      if (opts.signal.aborted || wasFinished) return;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 250);
        wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
  } finally {
    watcher?.close();
    opts.signal.removeEventListener("abort", poke);
  }
}
