// Client certificates: the control plane's (kept beside the CA), and one per machine for the
// docker CLI, in the directory `ctl machine env` points DOCKER_CERT_PATH at. Each machine's agent
// accepts only the control plane's and its own machine's (its allow list), so a machine's
// certificate opens nothing else, and a rotated or removed one stops working at once.
import { chmod, mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { certificateFingerprint, expiresWithin, signedBy, type CertificateAuthority, type KeyPair } from "./certs";

/** Certificates are re-issued this many days before they expire. */
export const RENEW_BEFORE_DAYS = 30;

async function readPair(certPath: string, keyPath: string): Promise<KeyPair | undefined> {
  try {
    return { cert: await readFile(certPath, "utf8"), key: await readFile(keyPath, "utf8") };
  } catch {
    return undefined;
  }
}

/** Whether a kept certificate can be used on: the CA signed it and it does not expire soon. */
function usable(pair: KeyPair | undefined, ca: CertificateAuthority, now: Date): pair is KeyPair {
  if (!pair) return false;
  try {
    return signedBy(pair.cert, ca.certPem) && !expiresWithin(pair.cert, RENEW_BEFORE_DAYS, now);
  } catch {
    return false;
  }
}

/**
 * `<name>` from the CA dir (`<name>-cert.pem` / `<name>-key.pem`, 0600), issued on first use and
 * again before it expires. Agents accept the control plane's by its common name, so its rotation
 * needs no change on them.
 */
export async function ensureClientCert(ca: CertificateAuthority, name: string, now = new Date()): Promise<KeyPair> {
  const certPath = join(ca.dir, `${name}-cert.pem`);
  const keyPath = join(ca.dir, `${name}-key.pem`);
  const kept = await readPair(certPath, keyPath);
  if (usable(kept, ca, now)) return kept;
  const pair = await ca.issueClient(name);
  await writeFile(keyPath, pair.key, { mode: 0o600 });
  await chmod(keyPath, 0o600);
  await writeFile(certPath, pair.cert, { mode: 0o644 });
  return pair;
}

/** The control plane's client certificate for talking to agents. */
export const CONTROL_PLANE_CLIENT = "control-plane";
/** The OU of per-machine client certificates: agents accept those by fingerprint only. */
export const MACHINE_CLIENT_UNIT = "machine";

/**
 * The machine's own client certificate in `dir` ({ca,cert,key}.pem for DOCKER_CERT_PATH): kept
 * while the CA signed it and (with `renew`) it is not about to expire, else (or with `rotate`) a
 * new one. The caller must then give the machine's agent the new allow list (`clientAllowList`).
 */
export async function ensureMachineClientCert(
  ca: CertificateAuthority,
  dir: string,
  machineName: string,
  opts: { rotate?: boolean; renew?: boolean; now?: Date } = {},
): Promise<{ pair: KeyPair; issued: boolean }> {
  const kept = await readPair(join(dir, "cert.pem"), join(dir, "key.pem"));
  // Without `renew` (nothing will tell the agent), a kept one that expires soon is still kept.
  const now = opts.renew ? (opts.now ?? new Date()) : new Date(0);
  if (!opts.rotate && usable(kept, ca, now)) return { pair: kept, issued: false };
  const pair = await ca.issueClient(machineName, 825, MACHINE_CLIENT_UNIT);
  await writeClientCertDir(dir, ca, pair);
  return { pair, issued: true };
}

/** The agent's allow list (agent/src/api/client-allow.ts): the control plane by name, the machine's certificates by fingerprint. */
export function clientAllowList(machineCerts: readonly string[]): string[] {
  return [`cn ${CONTROL_PLANE_CLIENT}`, ...machineCerts.map((c) => `sha256 ${certificateFingerprint(c)}`)];
}

/**
 * Writes `{ca.pem, cert.pem, key.pem}` into `dir` (the layout the docker CLI reads from
 * DOCKER_CERT_PATH). The key is 0600 and the dir 0700.
 */
export async function writeClientCertDir(dir: string, ca: CertificateAuthority, pair: KeyPair): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await chmod(dir, 0o700);
  await writeFile(join(dir, "ca.pem"), ca.certPem, { mode: 0o644 });
  await writeFile(join(dir, "key.pem"), pair.key, { mode: 0o600 });
  await chmod(join(dir, "key.pem"), 0o600);
  await writeFile(join(dir, "cert.pem"), pair.cert, { mode: 0o644 });
}

export async function removeClientCertDir(dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true });
}
