/**
 * Writes tar headers (ustar, with a pax extended header when a name, link, id or size does not
 * fit or xattrs come along), the format layer tars use. Pure: bytes in, bytes out.
 */

export type TarWriteType = "file" | "hardlink" | "symlink" | "char" | "block" | "directory" | "fifo";

export interface TarWriteEntry {
  /** Relative path without a leading `./`; directories get their trailing `/` here. */
  path: string;
  type: TarWriteType;
  mode: number;
  uid: number;
  gid: number;
  /** Bytes of content (files only). */
  size: number;
  /** Seconds since the epoch (whole seconds; layer tars carry no fractions here). */
  mtime: number;
  linkpath?: string;
  devmajor?: number;
  devminor?: number;
  xattrs?: Record<string, Buffer>;
  uname?: string;
  gname?: string;
}

const BLOCK = 512;
const TYPEFLAG: Record<TarWriteType, string> = { file: "0", hardlink: "1", symlink: "2", char: "3", block: "4", directory: "5", fifo: "6" };

/** The 1024 zero bytes that end an archive. */
export const TAR_END = Buffer.alloc(BLOCK * 2);

/** Zero padding after `size` bytes of content. */
export function tarPadding(size: number): Buffer {
  return Buffer.alloc((BLOCK - (size % BLOCK)) % BLOCK);
}

function fitsAscii(s: string, len: number): boolean {
  return Buffer.byteLength(s) <= len && /^[\x20-\x7e]*$/.test(s);
}

function octal(buf: Buffer, offset: number, len: number, value: number): void {
  buf.write(value.toString(8).padStart(len - 1, "0") + "\0", offset, len, "latin1");
}

function paxRecord(key: string, value: Buffer): Buffer {
  const body = Buffer.concat([Buffer.from(` ${key}=`), value, Buffer.from("\n")]);
  let len = body.length + 1;
  while (String(len).length + body.length !== len) len = String(len).length + body.length;
  return Buffer.concat([Buffer.from(String(len)), body]);
}

function ustar(name: string, e: TarWriteEntry, typeflag: string, size: number, linkpath: string): Buffer {
  const h = Buffer.alloc(BLOCK);
  h.write(name, 0, 100, "utf8");
  octal(h, 100, 8, e.mode & 0o7777);
  octal(h, 108, 8, Math.min(e.uid, 0o7777777));
  octal(h, 116, 8, Math.min(e.gid, 0o7777777));
  octal(h, 124, 12, size);
  octal(h, 136, 12, Math.max(0, Math.floor(e.mtime)));
  h.fill(0x20, 148, 156);
  h.write(typeflag, 156, 1, "latin1");
  h.write(linkpath, 157, 100, "utf8");
  h.write("ustar\u000000", 257, 8, "latin1");
  h.write(e.uname ?? "", 265, 32, "utf8");
  h.write(e.gname ?? "", 297, 32, "utf8");
  octal(h, 329, 8, e.devmajor ?? 0);
  octal(h, 337, 8, e.devminor ?? 0);
  let sum = 0;
  for (const b of h) sum += b;
  h.write(sum.toString(8).padStart(6, "0") + "\0 ", 148, 8, "latin1");
  return h;
}

/** The header block(s) for one entry: a pax header first when needed, then the ustar header. */
export function tarHeader(e: TarWriteEntry): Buffer {
  const path = e.type === "directory" && !e.path.endsWith("/") ? `${e.path}/` : e.path;
  const linkpath = e.linkpath ?? "";
  const size = e.type === "file" ? e.size : 0;
  const records: Buffer[] = [];
  if (!fitsAscii(path, 100)) records.push(paxRecord("path", Buffer.from(path)));
  if (!fitsAscii(linkpath, 100)) records.push(paxRecord("linkpath", Buffer.from(linkpath)));
  if (size > 0o77777777777) records.push(paxRecord("size", Buffer.from(String(size))));
  if (e.uid > 0o7777777) records.push(paxRecord("uid", Buffer.from(String(e.uid))));
  if (e.gid > 0o7777777) records.push(paxRecord("gid", Buffer.from(String(e.gid))));
  for (const [name, value] of Object.entries(e.xattrs ?? {}).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    records.push(paxRecord(`SCHILY.xattr.${name}`, value));
  }
  const main = ustar(
    path.length > 100 ? path.slice(0, 99) : path,
    e,
    TYPEFLAG[e.type],
    Math.min(size, 0o77777777777),
    linkpath.slice(0, 100),
  );
  if (records.length === 0) return main;
  const body = Buffer.concat(records);
  const paxName = `PaxHeaders.0/${path.replace(/\/$/, "").split("/").pop()!.slice(0, 80)}`;
  const pax = ustar(paxName, { ...e, uid: 0, gid: 0, mode: 0o644, uname: "", gname: "" }, "x", body.length, "");
  return Buffer.concat([pax, body, tarPadding(body.length), main]);
}
