// Builds tar archives byte by byte for tests, including the ones no honest tar tool writes
// (`../` names, links out of the archive, bad checksums), so the reader and the layer applier
// can be tested on exactly the bytes that matter.

export interface TarSpec {
  path: string;
  type?: "file" | "dir" | "symlink" | "hardlink" | "char" | "block" | "fifo";
  body?: string | Buffer;
  mode?: number;
  uid?: number;
  gid?: number;
  mtime?: number;
  linkpath?: string;
  devmajor?: number;
  devminor?: number;
  /** Records for a pax `x` header written before this entry. */
  pax?: Record<string, string | Buffer>;
  /** Write the name through a GNU `L` entry instead of the header. */
  gnuLongName?: boolean;
}

const FLAGS = { file: "0", hardlink: "1", symlink: "2", char: "3", block: "4", dir: "5", fifo: "6" } as const;

function octal(buf: Buffer, offset: number, len: number, value: number): void {
  buf.write(value.toString(8).padStart(len - 1, "0") + "\0", offset, len, "latin1");
}

/** One 512-byte ustar header with a correct checksum. */
export function header(name: string, typeflag: string, size: number, spec: Partial<TarSpec> = {}): Buffer {
  const h = Buffer.alloc(512);
  h.write(name.slice(0, 100), 0, 100, "utf8");
  octal(h, 100, 8, spec.mode ?? (typeflag === "5" ? 0o755 : 0o644));
  octal(h, 108, 8, spec.uid ?? 0);
  octal(h, 116, 8, spec.gid ?? 0);
  octal(h, 124, 12, size);
  octal(h, 136, 12, spec.mtime ?? 1_700_000_000);
  h[156] = typeflag.charCodeAt(0);
  h.write((spec.linkpath ?? "").slice(0, 100), 157, 100, "utf8");
  h.write("ustar\0", 257, 6, "latin1");
  h.write("00", 263, 2, "latin1");
  octal(h, 329, 8, spec.devmajor ?? 0);
  octal(h, 337, 8, spec.devminor ?? 0);
  h.fill(0x20, 148, 156);
  let sum = 0;
  for (const b of h) sum += b;
  h.write(sum.toString(8).padStart(6, "0") + "\0 ", 148, 8, "latin1");
  return h;
}

function padded(data: Buffer): Buffer {
  const pad = (512 - (data.length % 512)) % 512;
  return Buffer.concat([data, Buffer.alloc(pad)]);
}

/** Encodes pax records; each record's length counts its own digits. */
export function paxRecords(records: Record<string, string | Buffer>): Buffer {
  const parts: Buffer[] = [];
  for (const [key, value] of Object.entries(records)) {
    const payload = Buffer.concat([Buffer.from(` ${key}=`), Buffer.isBuffer(value) ? value : Buffer.from(value), Buffer.from("\n")]);
    let len = payload.length + 1;
    while (String(len).length + payload.length !== len) len = String(len).length + payload.length;
    parts.push(Buffer.concat([Buffer.from(String(len)), payload]));
  }
  return Buffer.concat(parts);
}

/** A complete archive; `end: false` leaves out the two zero blocks. */
export function makeTar(entries: readonly TarSpec[], opts: { end?: boolean } = {}): Buffer {
  const out: Buffer[] = [];
  for (const e of entries) {
    const type = e.type ?? "file";
    const body = type === "file" ? (Buffer.isBuffer(e.body) ? e.body : Buffer.from(e.body ?? "")) : Buffer.alloc(0);
    const pax = { ...(e.pax ?? {}) };
    if (Buffer.byteLength(e.path) > 100 && !e.gnuLongName) pax.path = e.path;
    if (Object.keys(pax).length) {
      const data = paxRecords(pax);
      out.push(header("PaxHeader", "x", data.length), padded(data));
    }
    if (e.gnuLongName) {
      const data = Buffer.from(`${e.path}\0`);
      out.push(header("././@LongLink", "L", data.length), padded(data));
    }
    out.push(header(e.path, FLAGS[type], body.length, e), padded(body));
  }
  if (opts.end !== false) out.push(Buffer.alloc(1024));
  return Buffer.concat(out);
}

/** Feeds a buffer in small, uneven chunks, as a network stream would. */
export async function* chunked(data: Buffer, sizes: readonly number[] = [1, 7, 512, 100, 3000]): AsyncGenerator<Buffer> {
  let i = 0;
  let k = 0;
  while (i < data.length) {
    const n = sizes[k++ % sizes.length]!;
    yield data.subarray(i, i + n);
    i += n;
  }
}
