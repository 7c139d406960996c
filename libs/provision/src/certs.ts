import { execFile } from "node:child_process";
import { X509Certificate, randomBytes } from "node:crypto";
import { chmod, mkdir, mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { isIP } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { InvalidError, UnavailableError } from "@flotilla/core";

const run = promisify(execFile);

/** PEM-encoded certificate and its private key. */
export interface KeyPair {
  cert: string;
  key: string;
}

export interface ServerCertRequest {
  /** The machine name; also a DNS SAN. */
  commonName: string;
  ips: string[];
  dnsNames?: string[];
  days?: number;
}

// ECDSA P-256: small, fast to generate (provisioning many machines), accepted by Go's TLS (docker CLI).
const KEY_ALGORITHM = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"];

async function openssl(args: string[], step: string, cwd: string): Promise<void> {
  try {
    await run("openssl", args, { cwd });
  } catch (e) {
    const err = e as { code?: string; stderr?: string; message: string };
    if (err.code === "ENOENT") throw new Error(`${step}: openssl is not installed (apt-get install openssl)`, { cause: e });
    throw new Error(`${step}: openssl ${args[0]} failed: ${(err.stderr ?? err.message).trim().split("\n").slice(-1)[0]}`, { cause: e });
  }
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

/**
 * The control plane's certificate authority: it signs every machine's server certificate and the
 * client certificates of the control plane and of users (`ctl machine env`). The key is 0600.
 */
export class CertificateAuthority {
  private constructor(
    readonly dir: string,
    readonly certPem: string,
    /** False on a control-plane replica given the CA certificate without its key: it issues nothing. */
    readonly canIssue = true,
  ) {}

  get certPath(): string {
    return join(this.dir, "ca.pem");
  }

  private get keyPath(): string {
    return join(this.dir, "ca-key.pem");
  }

  /**
   * Opens the CA in `dir`, creating it on first use. A certificate without its key (what a
   * control-plane replica on a machine is given: the key stays with the control plane's workers)
   * opens a CA that verifies but refuses to issue, naming why; a new CA there would split trust.
   */
  static async open(dir: string, commonName = "Flotilla CA"): Promise<CertificateAuthority> {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const cert = join(dir, "ca.pem");
    const key = join(dir, "ca-key.pem");
    const [haveCert, haveKey] = [await exists(cert), await exists(key)];
    if (haveCert && !haveKey) return new CertificateAuthority(dir, await readFile(cert, "utf8"), false);
    if (!haveCert || !haveKey) {
      await openssl(
        [
          "req",
          "-x509",
          ...KEY_ALGORITHM,
          "-nodes",
          "-keyout",
          key,
          "-out",
          cert,
          "-days",
          "3650",
          "-subj",
          `/O=Flotilla/CN=${commonName}`,
          "-addext",
          "basicConstraints=critical,CA:TRUE",
          "-addext",
          "keyUsage=critical,keyCertSign,cRLSign",
        ],
        "create CA",
        dir,
      );
      await chmod(key, 0o600);
    }
    return new CertificateAuthority(dir, await readFile(cert, "utf8"));
  }

  /** A server certificate for an agent, valid for the machine's IPs and names. */
  async issueServer(req: ServerCertRequest): Promise<KeyPair> {
    validateName(req.commonName);
    for (const ip of req.ips) if (!isIP(ip)) throw new InvalidError(`not an IP address: "${ip}"`, { field: "ips" });
    const sans = [...req.ips.map((ip) => `IP:${ip}`), ...[req.commonName, "localhost", ...(req.dnsNames ?? [])].map((d) => `DNS:${d}`)];
    return this.issue(req.commonName, ["serverAuth"], sans, req.days ?? 825);
  }

  /**
   * A client certificate (the control plane's, or a machine's for the docker CLI). `unit` goes
   * into the subject's OU: agents accept a certificate by common name only without one.
   */
  async issueClient(commonName: string, days = 825, unit?: string): Promise<KeyPair> {
    validateName(commonName);
    if (unit !== undefined) validateName(unit);
    return this.issue(commonName, ["clientAuth"], [], days, unit);
  }

  private async issue(commonName: string, usage: string[], sans: string[], days: number, unit?: string): Promise<KeyPair> {
    if (!this.canIssue)
      throw new UnavailableError(
        `cannot issue a certificate for ${commonName}: this control-plane replica has the CA certificate without its key (${this.keyPath}); ` +
          "do this through the control plane that holds the key (its workers, or its API's URL)",
        { reason: "no-ca-key" },
      );
    const work = await mkdtemp(join(tmpdir(), "flotilla-cert-"));
    try {
      const ext = [
        "basicConstraints=critical,CA:FALSE",
        "keyUsage=critical,digitalSignature,keyEncipherment",
        `extendedKeyUsage=${usage.join(",")}`,
        ...(sans.length ? [`subjectAltName=${sans.join(",")}`] : []),
      ].join("\n");
      await writeFile(join(work, "ext.cnf"), ext + "\n");
      await openssl(
        [
          "req",
          ...KEY_ALGORITHM,
          "-nodes",
          "-keyout",
          "key.pem",
          "-out",
          "req.csr",
          "-subj",
          `/O=Flotilla${unit ? `/OU=${unit}` : ""}/CN=${commonName}`,
        ],
        `key for ${commonName}`,
        work,
      );
      await openssl(
        [
          "x509",
          "-req",
          "-in",
          "req.csr",
          "-CA",
          this.certPath,
          "-CAkey",
          this.keyPath,
          "-set_serial",
          `0x${randomBytes(16).toString("hex")}`,
          "-days",
          String(days),
          "-extfile",
          "ext.cnf",
          "-out",
          "cert.pem",
        ],
        `sign certificate for ${commonName}`,
        work,
      );
      return { cert: await readFile(join(work, "cert.pem"), "utf8"), key: await readFile(join(work, "key.pem"), "utf8") };
    } finally {
      await rm(work, { recursive: true, force: true });
    }
  }
}

function validateName(name: string): void {
  // It goes into an openssl -subj and a SAN: keep it to what machine names allow.
  if (!/^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$/.test(name)) throw new InvalidError(`invalid certificate name "${name}"`, { field: "name" });
}

/** The IP addresses a certificate is valid for (its IP SANs). */
export function certificateIps(certPem: string): string[] {
  const san = new X509Certificate(certPem).subjectAltName ?? "";
  return san
    .split(", ")
    .filter((s) => s.startsWith("IP Address:"))
    .map((s) => s.slice("IP Address:".length));
}

/**
 * Whether a machine's server certificate must be re-issued: its IPs changed (the top complaint
 * about docker-machine, whose certs broke when a VM got a new DHCP address), or it expires soon.
 */
export function needsReissue(certPem: string, currentIps: string[], now = new Date(), renewBeforeDays = 30): boolean {
  const have = new Set(certificateIps(certPem));
  if (currentIps.some((ip) => !have.has(ip))) return true;
  const expires = new Date(new X509Certificate(certPem).validTo).getTime();
  return expires - now.getTime() < renewBeforeDays * 86_400_000;
}

/** When a certificate stops being valid. */
export function certificateExpiry(certPem: string): Date {
  return new Date(new X509Certificate(certPem).validTo);
}

/** SHA-256 fingerprint, lowercase hex without colons (what agents' allow lists hold). */
export function certificateFingerprint(certPem: string): string {
  return new X509Certificate(certPem).fingerprint256.replace(/:/g, "").toLowerCase();
}

/** Whether a certificate expires within `days` of `now` (rotation before expiry). */
export function expiresWithin(certPem: string, days: number, now = new Date()): boolean {
  return certificateExpiry(certPem).getTime() - now.getTime() < days * 86_400_000;
}

/** True when `certPem` was signed by `caPem`. */
export function signedBy(certPem: string, caPem: string): boolean {
  const ca = new X509Certificate(caPem);
  return new X509Certificate(certPem).checkIssued(ca) && new X509Certificate(certPem).verify(ca.publicKey);
}
