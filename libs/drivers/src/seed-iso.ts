// The machine's seed for hypervisors that cannot pass a kernel command line (VirtualBox,
// Hyper-V): a NoCloud-style ISO 9660 disk labelled "cidata" holding meta-data and user-data, as
// cloud-init reads it and as the guest image's flotilla-seed reads it (scripts/guest/flotilla-seed).
// Written here, byte by byte, because the hosts these drivers run on (Windows, macOS) have no
// genisoimage; the layout is the minimum Linux's isofs and blkid need.
//
//   sectors 0-15 system area (zeros) │ 16 primary volume descriptor │ 17 terminator │
//   18 L path table │ 19 M path table │ 20 root directory │ 21… file data, one extent per file

const SECTOR = 2048;
const PVD_SECTOR = 16;
const L_PATH_SECTOR = 18;
const M_PATH_SECTOR = 19;
const ROOT_SECTOR = 20;
const FIRST_FILE_SECTOR = 21;

/** What a machine's seed says. */
export interface MachineSeed {
  hostname: string;
  /** The user SSH logs in as; the guest creates it with password-less sudo. */
  user: string;
  /** An authorized_keys line. */
  publicKey: string;
}

/** The seed's files, as cloud-init's NoCloud source names them. */
export function seedFiles(seed: MachineSeed): Record<string, string> {
  return {
    "meta-data": `instance-id: ${seed.hostname}\nlocal-hostname: ${seed.hostname}\n`,
    "user-data": `#cloud-config\nuser: ${seed.user}\nssh_authorized_keys:\n  - ${seed.publicKey.trim()}\n`,
  };
}

function bothEndian32(n: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeUInt32LE(n, 0);
  b.writeUInt32BE(n, 4);
  return b;
}

function bothEndian16(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt16LE(n, 0);
  b.writeUInt16BE(n, 2);
  return b;
}

/** The 7-byte date of a directory record (UTC). */
function recordDate(d: Date): Buffer {
  return Buffer.from([
    d.getUTCFullYear() - 1900,
    d.getUTCMonth() + 1,
    d.getUTCDate(),
    d.getUTCHours(),
    d.getUTCMinutes(),
    d.getUTCSeconds(),
    0,
  ]);
}

/** The 17-byte date of the volume descriptor: "YYYYMMDDHHMMSScc" and a zone offset. */
function volumeDate(d: Date | undefined): Buffer {
  // Whole seconds, like the directory records' dates (hundredths "00").
  const digits = d
    ? d
        .toISOString()
        .replace(/[-:TZ.]/g, "")
        .slice(0, 14) + "00"
    : "0".repeat(16);
  return Buffer.concat([Buffer.from(digits, "ascii"), Buffer.from([0])]);
}

function directoryRecord(id: Buffer, sector: number, size: number, isDir: boolean, date: Date): Buffer {
  const len = 33 + id.length + (id.length % 2 === 0 ? 1 : 0);
  const r = Buffer.alloc(len);
  r[0] = len;
  bothEndian32(sector).copy(r, 2);
  bothEndian32(size).copy(r, 10);
  recordDate(date).copy(r, 18);
  r[25] = isDir ? 2 : 0;
  bothEndian16(1).copy(r, 28); // volume sequence number
  r[32] = id.length;
  id.copy(r, 33);
  return r;
}

function padded(text: string, width: number): Buffer {
  return Buffer.from(text.padEnd(width, " ").slice(0, width), "ascii");
}

/**
 * An ISO 9660 image labelled `label` holding `files` in its root. Names are written as ISO 9660
 * level-1 style identifiers ("META-DATA.;1"), which Linux shows in lower case without the
 * version ("meta-data"), as genisoimage's output without Rock Ridge reads.
 */
export function isoImage(label: string, files: Record<string, string | Buffer>, date = new Date()): Buffer {
  const names = Object.keys(files).sort();
  const bodies = names.map((n) => {
    const f = files[n];
    return typeof f === "string" ? Buffer.from(f, "utf8") : f;
  });
  const fileSectors: number[] = [];
  let next = FIRST_FILE_SECTOR;
  for (const b of bodies) {
    fileSectors.push(next);
    next += Math.max(1, Math.ceil(b.length / SECTOR));
  }
  const totalSectors = next;

  const root = Buffer.alloc(SECTOR);
  let at = 0;
  for (const rec of [
    directoryRecord(Buffer.from([0]), ROOT_SECTOR, SECTOR, true, date),
    directoryRecord(Buffer.from([1]), ROOT_SECTOR, SECTOR, true, date),
    ...names.map((n, i) => directoryRecord(Buffer.from(`${n.toUpperCase()}.;1`, "ascii"), fileSectors[i], bodies[i].length, false, date)),
  ]) {
    if (at + rec.length > SECTOR) throw new Error("isoImage: too many files for one directory sector");
    rec.copy(root, at);
    at += rec.length;
  }

  // One path table entry: the root (identifier 0x00, parent 1).
  const pathEntry = (bigEndian: boolean) => {
    const e = Buffer.alloc(10);
    e[0] = 1;
    if (bigEndian) {
      e.writeUInt32BE(ROOT_SECTOR, 2);
      e.writeUInt16BE(1, 6);
    } else {
      e.writeUInt32LE(ROOT_SECTOR, 2);
      e.writeUInt16LE(1, 6);
    }
    return e;
  };

  const pvd = Buffer.alloc(SECTOR);
  pvd[0] = 1;
  pvd.write("CD001", 1, "ascii");
  pvd[6] = 1;
  padded("LINUX", 32).copy(pvd, 8);
  padded(label, 32).copy(pvd, 40);
  bothEndian32(totalSectors).copy(pvd, 80);
  bothEndian16(1).copy(pvd, 120); // volume set size
  bothEndian16(1).copy(pvd, 124); // volume sequence number
  bothEndian16(SECTOR).copy(pvd, 128);
  bothEndian32(10).copy(pvd, 132); // path table size
  pvd.writeUInt32LE(L_PATH_SECTOR, 140);
  pvd.writeUInt32BE(M_PATH_SECTOR, 148);
  directoryRecord(Buffer.from([0]), ROOT_SECTOR, SECTOR, true, date).copy(pvd, 156);
  padded("", 128).copy(pvd, 190); // volume set
  padded("", 128).copy(pvd, 318); // publisher
  padded("", 128).copy(pvd, 446); // data preparer
  padded("FLOTILLA", 128).copy(pvd, 574); // application
  padded("", 37 * 3).copy(pvd, 702); // copyright, abstract, bibliographic file ids
  volumeDate(date).copy(pvd, 813);
  volumeDate(date).copy(pvd, 830);
  volumeDate(undefined).copy(pvd, 847);
  volumeDate(undefined).copy(pvd, 864);
  pvd[881] = 1; // file structure version

  const terminator = Buffer.alloc(SECTOR);
  terminator[0] = 255;
  terminator.write("CD001", 1, "ascii");
  terminator[6] = 1;

  const image = Buffer.alloc(totalSectors * SECTOR);
  pvd.copy(image, PVD_SECTOR * SECTOR);
  terminator.copy(image, (PVD_SECTOR + 1) * SECTOR);
  pathEntry(false).copy(image, L_PATH_SECTOR * SECTOR);
  pathEntry(true).copy(image, M_PATH_SECTOR * SECTOR);
  root.copy(image, ROOT_SECTOR * SECTOR);
  bodies.forEach((b, i) => b.copy(image, fileSectors[i] * SECTOR));
  return image;
}

/** The machine's seed disk: an ISO labelled "cidata" with meta-data and user-data. */
export function seedIso(seed: MachineSeed, date?: Date): Buffer {
  return isoImage("cidata", seedFiles(seed), date);
}
