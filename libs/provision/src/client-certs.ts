// Client certificates kept beside the CA (the control plane's and the users'), and the per-machine
// directory `ctl machine env` points DOCKER_CERT_PATH at.
import { chmod, mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { CertificateAuthority, KeyPair } from "./certs";

/** Issues `<name>` once and keeps it in the CA dir as `<name>-cert.pem` / `<name>-key.pem` (0600). */
export async function ensureClientCert(ca: CertificateAuthority, name: string): Promise<KeyPair> {
  const certPath = join(ca.dir, `${name}-cert.pem`);
  const keyPath = join(ca.dir, `${name}-key.pem`);
  try {
    return { cert: await readFile(certPath, "utf8"), key: await readFile(keyPath, "utf8") };
  } catch {
    const pair = await ca.issueClient(name);
    await writeFile(keyPath, pair.key, { mode: 0o600 });
    await chmod(keyPath, 0o600);
    await writeFile(certPath, pair.cert, { mode: 0o644 });
    return pair;
  }
}

/** The control plane's client certificate for talking to agents. */
export const CONTROL_PLANE_CLIENT = "control-plane";
/** The users' client certificate, copied into every machine dir for the docker CLI. */
export const USER_CLIENT = "user";

/**
 * Writes `{ca.pem, cert.pem, key.pem}` into `dir` (the layout the docker CLI reads from
 * DOCKER_CERT_PATH). The key is 0600 and the dir 0700.
 */
export async function writeClientCertDir(dir: string, ca: CertificateAuthority, pair: KeyPair): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await chmod(dir, 0o700);
  await writeFile(join(dir, "ca.pem"), ca.certPem, { mode: 0o644 });
  await writeFile(join(dir, "cert.pem"), pair.cert, { mode: 0o644 });
  await writeFile(join(dir, "key.pem"), pair.key, { mode: 0o600 });
  await chmod(join(dir, "key.pem"), 0o600);
}

export async function removeClientCertDir(dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true });
}
