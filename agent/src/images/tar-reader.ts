/**
 * A pull-based tar reader over an async byte stream: ustar, GNU long names (L/K) and pax
 * extended headers (x/g), including SCHILY.xattr.* and base-256 numbers. Entries come one at a
 * time and the next header is read only after the previous body was consumed or skipped, so
 * the caller can await file-system work per entry with natural back-pressure.
 *
 * Written here rather than taken from node-tar: applying layers needs raw entries (whiteout
 * names, device numbers, xattr values as bytes) and node-tar's parser is event-driven.
 */

export type TarEntryType = "file" | "hardlink" | "symlink" | "char" | "block" | "directory" | "fifo" | "other";

export interface TarEntry {
  /** Name as stored (not normalised: callers decide what is safe). */
  path: string;
  type: TarEntryType;
  /** The raw typeflag, for messages about "other" entries. */
  typeflag: string;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  /** Seconds since the epoch; fractional when a pax header says so. */
  mtime: number;
  linkpath: string;
  devmajor: number;
  devminor: number;
  /** From pax `SCHILY.xattr.<name>` records; values are raw bytes. */
  xattrs: Record<string, Buffer>;
}

export class TarFormatError extends Error {}

const BLOCK = 512;

/** Buffers an async byte source so it can be read in exact amounts. */
class ByteReader {
  private chunks: Buffer[] = [];
  private buffered = 0;
  private ended = false;
  offset = 0;

  constructor(private readonly source: AsyncIterator<Buffer>) {}

  private async fill(n: number): Promise<void> {
    while (this.buffered < n && !this.ended) {
      const r = await this.source.next();
      if (r.done) this.ended = true;
      else if (r.value.length > 0) {
        this.chunks.push(r.value);
        this.buffered += r.value.length;
      }
    }
  }

  /** Up to `max` bytes (at least 1) without copying more than needed; null at end of stream. */
  async some(max: number): Promise<Buffer | null> {
    await this.fill(1);
    if (this.buffered === 0) return null;
    let head = this.chunks[0]!;
    if (head.length > max) {
      this.chunks[0] = head.subarray(max);
      head = head.subarray(0, max);
    } else {
      this.chunks.shift();
    }
    this.buffered -= head.length;
    this.offset += head.length;
    return head;
  }

  /** Exactly `n` bytes; null if the stream ended before the first byte; throws if it ended midway. */
  async exact(n: number): Promise<Buffer | null> {
    await this.fill(n);
    if (this.buffered === 0) return null;
    if (this.buffered < n) throw new TarFormatError(`truncated archive at byte ${this.offset + this.buffered}`);
    const parts: Buffer[] = [];
    let need = n;
    while (need > 0) {
      const part = (await this.some(need))!;
      parts.push(part);
      need -= part.length;
    }
    return parts.length === 1 ? parts[0]! : Buffer.concat(parts);
  }

  async skip(n: number): Promise<void> {
    while (n > 0) {
      const part = await this.some(n);
      if (!part) throw new TarFormatError(`truncated archive at byte ${this.offset}`);
      n -= part.length;
    }
  }

  /** Reads everything left, so a digest computed over the stream covers trailing padding too. */
  async drain(): Promise<void> {
    while (await this.some(1 << 20)) {
      // Discard.
    }
  }
}

function cstring(buf: Buffer, start: number, len: number): string {
  const field = buf.subarray(start, start + len);
  const nul = field.indexOf(0);
  return field.subarray(0, nul < 0 ? len : nul).toString("utf8");
}

/** Octal ASCII, or GNU base-256 when the top bit of the first byte is set. */
function numeric(buf: Buffer, start: number, len: number): number {
  const field = buf.subarray(start, start + len);
  if (field[0]! & 0x80) {
    if (field[0]! & 0x40) throw new TarFormatError("negative base-256 number in header");
    let value = field[0]! & 0x3f;
    for (let i = 1; i < len; i++) value = value * 256 + field[i]!;
    return value;
  }
  const text = field
    .toString("latin1")
    .replace(/[\0 ]+$/, "")
    .trim();
  if (text === "") return 0;
  if (!/^[0-7]+$/.test(text)) throw new TarFormatError(`bad octal field ${JSON.stringify(text)}`);
  return parseInt(text, 8);
}

function checksumOk(header: Buffer): boolean {
  const stored = numeric(header, 148, 8);
  let unsigned = 0;
  let signed = 0;
  for (let i = 0; i < BLOCK; i++) {
    const b = i >= 148 && i < 156 ? 0x20 : header[i]!;
    unsigned += b;
    signed += b > 127 ? b - 256 : b;
  }
  // Some old tars summed signed bytes; accept either, as GNU tar does.
  return stored === unsigned || stored === signed;
}

/** Parses pax records `"<len> <key>=<value>\n"`; values stay bytes (xattrs are binary). */
function parsePax(body: Buffer): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  let i = 0;
  while (i < body.length) {
    const space = body.indexOf(0x20, i);
    if (space < 0) break;
    const len = Number(body.subarray(i, space).toString("latin1"));
    if (!Number.isInteger(len) || len <= 0 || i + len > body.length) throw new TarFormatError("bad pax record length");
    const record = body.subarray(space + 1, i + len - 1); // without the trailing newline
    const eq = record.indexOf(0x3d);
    if (eq > 0) out.set(record.subarray(0, eq).toString("utf8"), Buffer.from(record.subarray(eq + 1)));
    i += len;
  }
  return out;
}

const TYPES: Record<string, TarEntryType> = {
  "0": "file",
  "\0": "file",
  "7": "file",
  "1": "hardlink",
  "2": "symlink",
  "3": "char",
  "4": "block",
  "5": "directory",
  "6": "fifo",
};

/**
 * Yields each entry with its body. The body must be consumed before asking for the next entry
 * or it is skipped. After the end-of-archive marker the rest of the stream is drained.
 */
export async function* readTar(source: AsyncIterable<Buffer>): AsyncGenerator<{ entry: TarEntry; body: AsyncIterable<Buffer> }> {
  const reader = new ByteReader(source[Symbol.asyncIterator]());
  let globalPax = new Map<string, Buffer>();
  let pax = new Map<string, Buffer>();
  let longName: string | undefined;
  let longLink: string | undefined;

  const readBody = async (size: number): Promise<Buffer> => {
    if (size > 16 << 20) throw new TarFormatError(`metadata entry of ${size} bytes`);
    const data = size === 0 ? Buffer.alloc(0) : await reader.exact(size);
    if (!data) throw new TarFormatError("truncated archive");
    await reader.skip((BLOCK - (size % BLOCK)) % BLOCK);
    return data;
  };

  for (;;) {
    const header = await reader.exact(BLOCK);
    if (!header) return; // A stream with no end marker at all: tolerated, like GNU tar.
    if (header.every((b) => b === 0)) {
      await reader.drain();
      return;
    }
    if (!checksumOk(header)) throw new TarFormatError(`bad header checksum at byte ${reader.offset - BLOCK}`);
    const typeflag = String.fromCharCode(header[156]!);
    let size = numeric(header, 124, 12);

    if (typeflag === "x" || typeflag === "g" || typeflag === "L" || typeflag === "K") {
      const data = await readBody(size);
      if (typeflag === "x") pax = new Map([...pax, ...parsePax(data)]);
      else if (typeflag === "g") globalPax = new Map([...globalPax, ...parsePax(data)]);
      else if (typeflag === "L") longName = cstring(data, 0, data.length);
      else longLink = cstring(data, 0, data.length);
      continue;
    }

    const all = new Map([...globalPax, ...pax]);
    const text = (key: string) => all.get(key)?.toString("utf8");
    const num = (key: string, fallback: number) => {
      const v = text(key);
      return v !== undefined && v !== "" && Number.isFinite(Number(v)) ? Number(v) : fallback;
    };
    const magic = header.subarray(257, 263).toString("latin1");
    const prefix = magic === "ustar\0" ? cstring(header, 345, 155) : "";
    let path = text("path") ?? longName ?? (prefix ? `${prefix}/${cstring(header, 0, 100)}` : cstring(header, 0, 100));
    size = num("size", size);
    let type: TarEntryType = TYPES[typeflag] ?? "other";
    // Pre-POSIX tars mark directories only by a trailing slash.
    if (type === "file" && typeflag !== "7" && path.endsWith("/")) type = "directory";
    if (type === "directory") path = path.replace(/\/+$/, "") || "/";

    // Links, devices and directories carry no data blocks, whatever the size field says (POSIX).
    const dataSize = type === "file" || type === "other" ? size : 0;
    const xattrs: Record<string, Buffer> = {};
    for (const [k, v] of all) if (k.startsWith("SCHILY.xattr.")) xattrs[k.slice("SCHILY.xattr.".length)] = v;

    const entry: TarEntry = {
      path,
      type,
      typeflag,
      mode: numeric(header, 100, 8) & 0o7777,
      uid: num("uid", numeric(header, 108, 8)),
      gid: num("gid", numeric(header, 116, 8)),
      size: dataSize,
      mtime: num("mtime", numeric(header, 136, 12)),
      linkpath: text("linkpath") ?? longLink ?? cstring(header, 157, 100),
      devmajor: numeric(header, 329, 8),
      devminor: numeric(header, 337, 8),
      xattrs,
    };
    pax = new Map();
    longName = undefined;
    longLink = undefined;

    let remaining = dataSize;
    const body: AsyncIterable<Buffer> = {
      async *[Symbol.asyncIterator]() {
        while (remaining > 0) {
          const part = await reader.some(Math.min(remaining, 1 << 20));
          if (!part) throw new TarFormatError(`truncated archive in ${path}`);
          remaining -= part.length;
          yield part;
        }
      },
    };
    yield { entry, body };
    await reader.skip(remaining + ((BLOCK - (dataSize % BLOCK)) % BLOCK));
  }
}
