// How a new VM learns the machine's SSH key: the boot2docker convention, which boot2docker-style
// images (and ours) follow. The first bytes of the blank data disk are a tar whose first entry is
// named "boot2docker, please format-me"; on first boot the guest sees that name, saves the tar,
// formats the disk and unpacks the tar into the SSH user's home (so .ssh/authorized_keys lands).
// No network, no cloud-init, no shared folder needed.

export const FORMAT_ME_MAGIC = "boot2docker, please format-me";

interface TarEntry {
  name: string;
  body?: Buffer;
  mode: number;
  dir?: boolean;
}

function octal(n: number, width: number): string {
  // width includes the terminating NUL.
  return n.toString(8).padStart(width - 1, "0") + "\0";
}

function header(e: TarEntry, mtime: number): Buffer {
  const h = Buffer.alloc(512);
  const size = e.dir ? 0 : (e.body?.length ?? 0);
  h.write(e.name, 0, 100, "utf8");
  h.write(octal(e.mode, 8), 100, "ascii");
  h.write(octal(0, 8), 108, "ascii"); // uid
  h.write(octal(0, 8), 116, "ascii"); // gid
  h.write(octal(size, 12), 124, "ascii");
  h.write(octal(mtime, 12), 136, "ascii");
  h.write("        ", 148, "ascii"); // checksum is computed with its own field as spaces
  h.write(e.dir ? "5" : "0", 156, "ascii");
  h.write("ustar\0", 257, "ascii");
  h.write("00", 263, "ascii");
  let sum = 0;
  for (const b of h) sum += b;
  h.write(sum.toString(8).padStart(6, "0") + "\0 ", 148, "ascii");
  return h;
}

function tar(entries: readonly TarEntry[], mtime: number): Buffer {
  const parts: Buffer[] = [];
  for (const e of entries) {
    parts.push(header(e, mtime));
    if (!e.dir && e.body && e.body.length > 0) {
      parts.push(e.body, Buffer.alloc((512 - (e.body.length % 512)) % 512));
    }
  }
  parts.push(Buffer.alloc(1024)); // end of archive: two zero blocks
  return Buffer.concat(parts);
}

/** The tar written at the start of a new machine's data disk, carrying `publicKey` (an authorized_keys line). */
export function boot2dockerUserdata(publicKey: string, mtime = Math.floor(Date.now() / 1000)): Buffer {
  const key = Buffer.from(publicKey.trim() + "\n", "utf8");
  return tar(
    [
      { name: FORMAT_ME_MAGIC, body: Buffer.from(FORMAT_ME_MAGIC, "utf8"), mode: 0o644 },
      { name: ".ssh", mode: 0o700, dir: true },
      { name: ".ssh/authorized_keys", body: key, mode: 0o644 },
      { name: ".ssh/authorized_keys2", body: key, mode: 0o644 },
    ],
    mtime,
  );
}
