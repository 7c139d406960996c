// Which client certificates this agent accepts beyond "signed by the Flotilla CA": the list the
// control plane wrote (--tlsclients). Every certificate the CA signed would otherwise open every
// machine, and a rotated or removed machine's certificate would keep working until it expired.
// The file is re-read when it changes, so a rotation needs no agent restart.
import * as fs from "node:fs";
import type { PeerCertificate, TLSSocket } from "node:tls";

/**
 * One entry a line: `sha256 <hex>` (a certificate's SHA-256 fingerprint, with or without colons)
 * or `cn <name>` (any certificate with that common name and no organisational unit: the control
 * plane's own, rotated by the control plane; per-machine certificates carry OU=machine and are
 * only ever listed by fingerprint). `#` starts a comment.
 */
export interface ClientAllowList {
  fingerprints: ReadonlySet<string>;
  names: ReadonlySet<string>;
}

export function parseClientAllowList(text: string): ClientAllowList {
  const fingerprints = new Set<string>();
  const names = new Set<string>();
  for (const raw of text.split("\n")) {
    const line = raw.replace(/#.*/, "").trim();
    if (!line) continue;
    const [kind, value] = line.split(/\s+/, 2) as [string, string | undefined];
    if (!value) continue;
    if (kind.toLowerCase() === "sha256") fingerprints.add(normalizeFingerprint(value));
    else if (kind.toLowerCase() === "cn") names.add(value);
  }
  return { fingerprints, names };
}

export function normalizeFingerprint(fp: string): string {
  return fp.replace(/:/g, "").toLowerCase();
}

/** Whether `peer` is on the list; otherwise why not, for the refusal and the log. */
export function clientAllowed(list: ClientAllowList, peer: Pick<PeerCertificate, "fingerprint256" | "subject">): true | string {
  if (peer.fingerprint256 && list.fingerprints.has(normalizeFingerprint(peer.fingerprint256))) return true;
  const subject = (peer.subject ?? {}) as unknown as Record<string, string | undefined>;
  const cn = subject.CN;
  if (cn && !subject.OU && list.names.has(cn)) return true;
  return `client certificate "${cn ?? "?"}" (SHA256 ${peer.fingerprint256 ?? "?"}) is not accepted by this machine: it was revoked, rotated, or issued for another machine`;
}

/** The list in a file, re-read when the file's mtime or size changes. A missing file accepts nobody. */
export class ClientAllowFile {
  private stamp = "";
  private list: ClientAllowList = { fingerprints: new Set(), names: new Set() };

  constructor(readonly path: string) {}

  current(): ClientAllowList {
    let stamp = "missing";
    try {
      const st = fs.statSync(this.path);
      stamp = `${st.mtimeMs}:${st.size}:${st.ino}`;
    } catch {
      // Fail closed: nothing accepted until the control plane writes the list again.
    }
    if (stamp !== this.stamp) {
      this.list =
        stamp === "missing" ? { fingerprints: new Set(), names: new Set() } : parseClientAllowList(fs.readFileSync(this.path, "utf8"));
      this.stamp = stamp;
    }
    return this.list;
  }
}

/**
 * The refusal for a request on a TLS socket whose client certificate is not on the list (checked
 * once per connection), or undefined. Requests are answered 403 with the reason, which the docker
 * CLI prints; upgrades (attach, exec) get the same answer before the socket is closed.
 */
export class ClientGate {
  private readonly verdicts = new WeakMap<object, string | undefined>();

  constructor(
    private readonly file: ClientAllowFile,
    private readonly log: (msg: string) => void,
  ) {}

  refusal(socket: object & { remoteAddress?: string }): string | undefined {
    if (this.verdicts.has(socket)) return this.verdicts.get(socket);
    const peer = (socket as Partial<TLSSocket>).getPeerCertificate?.();
    const verdict = peer ? clientAllowed(this.file.current(), peer) : "no client certificate";
    const why = verdict === true ? undefined : verdict;
    if (why) this.log(`refused ${socket.remoteAddress ?? "?"}: ${why}`);
    this.verdicts.set(socket, why);
    return why;
  }

  /** The raw 403 for an upgrade request's socket. */
  static rawRefusal(why: string): string {
    const body = JSON.stringify({ message: why });
    return `HTTP/1.1 403 Forbidden\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`;
  }
}
