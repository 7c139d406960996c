// Machine SSH keys, made with Node's own ed25519 and written in the OpenSSH formats by hand.
// ssh2's utils.generateKeyPairSync drops a leading zero byte of the public key (about 1 key in
// 256), and the private key it writes then fails to parse ("Malformed OpenSSH private key"): a
// machine create failed at its ssh step for that. The formats are small and fixed, so they are
// written here: PROTOCOL.key of OpenSSH for the private key, RFC 8709 for the public blob.
import { generateKeyPairSync, randomBytes } from "node:crypto";

export interface SshKeyPair {
  /** OpenSSH private key ("-----BEGIN OPENSSH PRIVATE KEY-----"), unencrypted. */
  privateKey: string;
  /** authorized_keys line: "ssh-ed25519 AAAA... comment". */
  publicKey: string;
}

const KEY_TYPE = "ssh-ed25519";

/** An SSH wire "string": a uint32 length, then the bytes. */
function sshString(data: Buffer | string): Buffer {
  const bytes = typeof data === "string" ? Buffer.from(data, "utf8") : data;
  const length = Buffer.alloc(4);
  length.writeUInt32BE(bytes.length);
  return Buffer.concat([length, bytes]);
}

function uint32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n >>> 0);
  return b;
}

// RFC 8410's fixed DER for an ed25519 key: these prefixes, then the 32 raw bytes.
const PKCS8_PREFIX = Buffer.from("302e020100300506032b657004220420", "hex");
const SPKI_PREFIX = Buffer.from("302a300506032b6570032100", "hex");

/**
 * The raw 32-byte seed and public key of a new ed25519 pair. Encoded by the key generation itself
 * rather than exported from its KeyObjects afterwards: Node 20 could deadlock exporting an ed25519
 * KeyObject as JWK when a garbage collection during the export finalised the job that made the
 * key (both take the key's mutex; a test worker hung in ExportJWKEdKey under ~KeyGenJob).
 */
function newEd25519(): { seed: Buffer; pub: Buffer } {
  const { publicKey, privateKey } = generateKeyPairSync("ed25519", {
    publicKeyEncoding: { type: "spki", format: "der" },
    privateKeyEncoding: { type: "pkcs8", format: "der" },
  });
  const raw = (der: Buffer, prefix: Buffer, what: string): Buffer => {
    if (der.length !== prefix.length + 32 || !der.subarray(0, prefix.length).equals(prefix))
      throw new Error(`ed25519: unexpected ${what} encoding (${der.length} bytes)`);
    return der.subarray(prefix.length);
  };
  return { seed: raw(privateKey, PKCS8_PREFIX, "private key"), pub: raw(publicKey, SPKI_PREFIX, "public key") };
}

/** A new ed25519 key pair in the formats sshd and ssh2 read. */
export function generateSshKeyPair(comment: string): SshKeyPair {
  const { seed, pub } = newEd25519();
  const publicBlob = Buffer.concat([sshString(KEY_TYPE), sshString(pub)]);
  // The two equal check words let a reader tell a wrong passphrase; unencrypted keys keep them.
  const check = randomBytes(4).readUInt32BE();
  let secret = Buffer.concat([
    uint32(check),
    uint32(check),
    sshString(KEY_TYPE),
    sshString(pub),
    sshString(Buffer.concat([seed, pub])),
    sshString(comment),
  ]);
  // Padded to the cipher block size ("none": 8) with the bytes 1, 2, 3, ...
  const padding = (8 - (secret.length % 8)) % 8;
  secret = Buffer.concat([secret, Buffer.from(Array.from({ length: padding }, (_, i) => i + 1))]);
  const body = Buffer.concat([
    Buffer.from("openssh-key-v1\0", "latin1"),
    sshString("none"),
    sshString("none"),
    sshString(""),
    uint32(1),
    sshString(publicBlob),
    sshString(secret),
  ]);
  const lines = body.toString("base64").match(/.{1,70}/g)!;
  const privateKey = ["-----BEGIN OPENSSH PRIVATE KEY-----", ...lines, "-----END OPENSSH PRIVATE KEY-----", ""].join("\n");
  const publicKey = `${KEY_TYPE} ${publicBlob.toString("base64")}${comment ? ` ${comment}` : ""}`;
  return { privateKey, publicKey };
}
