// The key that encrypts secrets and configs at rest: AES-256-GCM, 32 random bytes kept in a file
// outside the database (mode 0600), so a dump or a backup of Postgres alone reveals nothing. Each
// row names the key that sealed it (`keyId`, a fingerprint): a rotation writes the new key to
// KEYFILE.next, re-seals every row in one transaction, then renames it over KEYFILE — a crash at
// any point leaves every row readable with one of the two files. The row's kind and name are the
// authenticated data, so a ciphertext copied onto another row does not open.
import { createCipheriv, createDecipheriv, createHash, randomBytes } from "node:crypto";
import * as fs from "node:fs";
import { dirname } from "node:path";
import { UnavailableError } from "@flotilla/core";

/** What a row stores of a value (plain ArrayBuffer-backed arrays, as Prisma's Bytes columns take). */
export interface Sealed {
  ciphertext: Uint8Array<ArrayBuffer>;
  iv: Uint8Array<ArrayBuffer>;
  tag: Uint8Array<ArrayBuffer>;
  keyId: string;
}

const fingerprint = (key: Buffer) => createHash("sha256").update(key).digest("hex").slice(0, 16);

/** Reads a key file, refusing one that others may read; undefined when it does not exist. */
function readKey(path: string): Buffer | undefined {
  let st: fs.Stats;
  try {
    st = fs.statSync(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw e;
  }
  if ((st.mode & 0o077) !== 0) {
    throw new UnavailableError(
      `secrets key ${path} may be read by others (mode ${(st.mode & 0o777).toString(8)}): chmod 600 it, and rotate the key`,
    );
  }
  const key = Buffer.from(fs.readFileSync(path, "utf8").trim(), "hex");
  if (key.length !== 32) throw new UnavailableError(`secrets key ${path} is not 64 hex digits (a 256-bit key)`);
  return key;
}

function writeKey(path: string, key: Buffer): void {
  fs.mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  // O_EXCL: two processes starting together must not each write their own key.
  fs.writeFileSync(path, `${key.toString("hex")}\n`, { mode: 0o600, flag: "wx" });
}

export class SecretKeys {
  private keys = new Map<string, Buffer>();
  private currentId = "";

  constructor(private readonly path: string) {
    this.load();
  }

  /** (Re)reads KEYFILE and KEYFILE.next; creates KEYFILE on first use. */
  private load(): void {
    let current = readKey(this.path);
    if (!current) {
      try {
        writeKey(this.path, randomBytes(32));
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
      }
      current = readKey(this.path)!;
    }
    const next = readKey(`${this.path}.next`);
    this.keys = new Map([[fingerprint(current), current]]);
    if (next) this.keys.set(fingerprint(next), next);
    this.currentId = fingerprint(current);
  }

  private key(id: string): Buffer {
    // Another process may have rotated the key since this one read it.
    if (!this.keys.has(id)) this.load();
    const key = this.keys.get(id);
    if (!key) throw new UnavailableError(`no secrets key ${id} in ${this.path}: the key file was replaced or lost`);
    return key;
  }

  /** Encrypts with the current key (or `keyId`'s). */
  seal(plain: Uint8Array, aad: string, keyId = this.currentId): Sealed {
    const iv = randomBytes(12);
    const cipher = createCipheriv("aes-256-gcm", this.key(keyId), iv);
    cipher.setAAD(Buffer.from(aad));
    const ciphertext = Buffer.concat([cipher.update(plain), cipher.final()]);
    return { ciphertext: new Uint8Array(ciphertext), iv: new Uint8Array(iv), tag: new Uint8Array(cipher.getAuthTag()), keyId };
  }

  /** Decrypts; throws when the row was altered or sealed for another name. */
  open(s: Pick<Sealed, "keyId"> & { ciphertext: Uint8Array; iv: Uint8Array; tag: Uint8Array }, aad: string): Buffer {
    const decipher = createDecipheriv("aes-256-gcm", this.key(s.keyId), s.iv);
    decipher.setAAD(Buffer.from(aad));
    decipher.setAuthTag(s.tag);
    try {
      return Buffer.concat([decipher.update(s.ciphertext), decipher.final()]);
    } catch {
      throw new UnavailableError(`stored value of ${aad} does not decrypt: it was altered or sealed for another row`);
    }
  }

  /** Step 1 of a rotation: KEYFILE.next (made now, or kept from a rotation that stopped). Returns its id. */
  prepareNext(): string {
    const nextPath = `${this.path}.next`;
    if (!readKey(nextPath)) writeKey(nextPath, randomBytes(32));
    this.load();
    return fingerprint(readKey(nextPath)!);
  }

  /** Step 3, once every row is sealed with the next key: it becomes the key. */
  commitNext(): void {
    fs.renameSync(`${this.path}.next`, this.path);
    this.load();
  }

  /** The current key's id. */
  get currentKeyId(): string {
    return this.currentId;
  }
}
