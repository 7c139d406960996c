// The little of tar provisioning needs, for archives it makes or that scripts/build-agent-bundle.mjs
// made: members of an uncompressed archive with their raw byte ranges (to re-emit a subset
// unchanged), and an archive of regular files to write several files on a host in one SSH exec.
// Extracted on hosts by their own tar (GNU or busybox), so only plain ustar is written.

export const TAR_BLOCK = 512;
const BLOCK = TAR_BLOCK;

export interface TarMember {
  name: string;
  /** The member's raw bytes: its header(s), including any pax or GNU long-name header, and body. */
  start: number;
  end: number;
  body: Buffer;
}

function field(h: Buffer, offset: number, length: number): string {
  const raw = h.subarray(offset, offset + length);
  const nul = raw.indexOf(0);
  return raw.subarray(0, nul < 0 ? raw.length : nul).toString("utf8");
}

function size(h: Buffer): number {
  const raw = h.subarray(124, 136);
  // GNU base-256 for sizes beyond 8 GiB octal; a bundle never has one, but read it right.
  if (raw[0]! & 0x80) return raw.subarray(1).reduce((n, b) => n * 256 + b, raw[0]! & 0x7f);
  return parseInt(field(h, 124, 12).trim() || "0", 8);
}

/**
 * The members of an uncompressed tar (ustar or GNU), each with its raw byte range so a subset can
 * be re-emitted unchanged. Pax ("x"/"g") and GNU long-name ("L"/"K") headers stay with the member
 * they describe. Throws on a truncated or malformed archive.
 */
export function tarMembers(tar: Buffer): TarMember[] {
  const out: TarMember[] = [];
  let pos = 0;
  let start = 0;
  let longName: string | undefined;
  while (pos + BLOCK <= tar.length) {
    const h = tar.subarray(pos, pos + BLOCK);
    if (h.every((b) => b === 0)) return out;
    const sum = h.reduce((s, b, i) => s + (i >= 148 && i < 156 ? 32 : b), 0);
    if (sum !== parseInt(field(h, 148, 8).trim(), 8)) throw new Error(`tar: bad header checksum at byte ${pos}`);
    const n = size(h);
    const bodyStart = pos + BLOCK;
    const next = bodyStart + Math.ceil(n / BLOCK) * BLOCK;
    if (next > tar.length) throw new Error(`tar: truncated member at byte ${pos}`);
    const body = tar.subarray(bodyStart, bodyStart + n);
    const type = String.fromCharCode(h[156]!);
    if (type === "L") longName = field(body, 0, body.length);
    if (type === "x") longName = /(?:^|\n)\d+ path=([^\n]*)\n/.exec(body.toString("utf8"))?.[1] ?? longName;
    if ("xgLK".includes(type)) {
      pos = next;
      continue;
    }
    // POSIX ustar ("ustar\0") splits long names into prefix/name; GNU ("ustar  ") does not.
    const prefix = h.subarray(257, 263).equals(Buffer.from("ustar\0", "latin1")) ? field(h, 345, 155) : "";
    const name = longName ?? (prefix ? `${prefix}/${field(h, 0, 100)}` : field(h, 0, 100));
    out.push({ name: name.replace(/^\.\//, ""), start, end: next, body });
    longName = undefined;
    pos = start = next;
  }
  throw new Error("tar: no end-of-archive marker");
}

export interface TarFile {
  /** Absolute or relative; stored relative (extract with -C /). */
  path: string;
  content: string | Buffer;
  mode: number;
}

function put(h: Buffer, offset: number, length: number, value: string): void {
  const b = Buffer.from(value, "utf8");
  if (b.length > length) throw new Error(`tar: ${JSON.stringify(value)} does not fit in ${length} bytes`);
  b.copy(h, offset);
}

const octal = (n: number, digits: number) => n.toString(8).padStart(digits, "0");

/** A ustar archive of regular files owned by root (uid 0), with their modes; names up to 255 bytes. */
export function tarOf(files: readonly TarFile[], mtime = Math.floor(Date.now() / 1000)): Buffer {
  const parts: Buffer[] = [];
  for (const f of files) {
    const path = f.path.replace(/^\/+/, "");
    let name = path;
    let prefix = "";
    if (Buffer.byteLength(path) > 100) {
      // Split at a "/" so that the name part fits in 100 bytes and the prefix in 155.
      const at = [...path.matchAll(/\//g)].map((m) => m.index!).find((i) => Buffer.byteLength(path.slice(i + 1)) <= 100 && i <= 155);
      if (at === undefined) throw new Error(`tar: path too long: ${path}`);
      prefix = path.slice(0, at);
      name = path.slice(at + 1);
    }
    const body = Buffer.isBuffer(f.content) ? f.content : Buffer.from(f.content, "utf8");
    const h = Buffer.alloc(BLOCK);
    put(h, 0, 100, name);
    put(h, 100, 8, `${octal(f.mode & 0o7777, 7)}\0`);
    put(h, 108, 8, "0000000\0");
    put(h, 116, 8, "0000000\0");
    put(h, 124, 12, `${octal(body.length, 11)}\0`);
    put(h, 136, 12, `${octal(mtime, 11)}\0`);
    put(h, 148, 8, "        ");
    put(h, 156, 1, "0");
    put(h, 257, 8, "ustar\x0000");
    put(h, 265, 32, "root");
    put(h, 297, 32, "root");
    put(h, 345, 155, prefix);
    put(
      h,
      148,
      8,
      `${octal(
        h.reduce((a, b) => a + b, 0),
        6,
      )}\0 `,
    );
    parts.push(h, body, Buffer.alloc((BLOCK - (body.length % BLOCK)) % BLOCK));
  }
  parts.push(Buffer.alloc(2 * BLOCK));
  return Buffer.concat(parts);
}
