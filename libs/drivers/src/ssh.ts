// A small SSH client layer over ssh2, shared by the generic driver and the provisioner:
// connect with an AbortSignal and a time limit, exec returning stdout/stderr/exit code, and
// errors that name the endpoint and the cause ("ssh 198.18.0.3:22: connection refused").
import { createHash } from "node:crypto";
import { readFile, writeFile } from "node:fs/promises";
import { Client, utils, type ClientChannel, type ConnectConfig } from "ssh2";
import { InvalidError, UnavailableError, type DomainError } from "@flotilla/core";
import { formatDuration, hostPort } from "./net";

export type SshFailure = "auth" | "refused" | "timeout" | "unreachable" | "dns" | "closed" | "handshake" | "exec" | "hostkey";

export interface SshConnectOptions {
  host: string;
  port: number;
  user: string;
  /** Private key contents (OpenSSH or PEM format, unencrypted). */
  privateKey: string | Buffer;
  signal?: AbortSignal;
  /** Limit for TCP connect + handshake + authentication. Default 10s. */
  timeoutMs?: number;
  /**
   * Host key check. Without one any host key is accepted, as docker-machine does for machines it
   * just created: their keys are new by definition. Pin a key (e.g. from the machine store) when
   * reconnecting matters.
   */
  hostVerifier?: (key: Buffer) => boolean;
  /**
   * The host key pinned for this machine (an OpenSSH public key line): any other key is refused
   * before authentication, with a message saying so. Takes precedence over hostVerifier.
   */
  hostKey?: string;
  /**
   * Trust on first use: where the machine's host key is pinned (the control plane: its machine
   * record). When it holds one, that key is pinned (as hostKey); when it holds none, the key
   * presented by this first successful login is pinned there from then on.
   */
  hostKeyPin?: HostKeyPin;
  /** The machine's name, for the host key messages. */
  machine?: string;
}

/** The OpenSSH public key line ("ssh-ed25519 AAAA...") of a raw key blob (its first field names the type). */
export function publicKeyLine(blob: Buffer): string {
  const len = blob.length >= 4 ? blob.readUInt32BE(0) : 0;
  const type = blob.subarray(4, 4 + len).toString("latin1");
  return `${type} ${blob.toString("base64")}`;
}

/**
 * Where a machine's SSH host key is pinned on first use. `pinFirst` pins `key` only when nothing
 * is pinned yet and returns what is pinned afterwards: of two first connections racing, the
 * second learns the first one's key and must present the same.
 */
export interface HostKeyPin {
  read(): Promise<string | undefined>;
  pinFirst(key: string): Promise<string>;
  /** Where the pin is kept, for the messages ("the machine record"). */
  readonly where: string;
}

/**
 * A pin in a file, written exclusively: for drivers used without a control plane (their tests,
 * the machines bench). The control plane pins in the machine record instead.
 */
export function fileHostKeyPin(file: string): HostKeyPin {
  return {
    where: file,
    read: () => readPinnedHostKey(file),
    async pinFirst(key) {
      try {
        await writeFile(file, `${key}\n`, { flag: "wx", mode: 0o644 });
        return key;
      } catch (e) {
        const raced = (e as NodeJS.ErrnoException).code === "EEXIST" ? await readPinnedHostKey(file) : undefined;
        if (!raced) throw e;
        return raced;
      }
    },
  };
}

/** The pinned key in `file` (first line), or undefined when nothing is pinned yet. */
export async function readPinnedHostKey(file: string): Promise<string | undefined> {
  const text = await readFile(file, "utf8").catch((e: NodeJS.ErrnoException) => {
    if (e.code === "ENOENT") return "";
    throw e;
  });
  return text.split("\n")[0]!.trim() || undefined;
}

function hostKeyChanged(endpoint: string, machine: string | undefined, presented: Buffer, pinned: Buffer, when: string): DomainError {
  return sshError(
    endpoint,
    "hostkey",
    `${machine ? `machine ${machine}: ` : ""}host key changed: the machine presented ${keyFingerprint(presented)}, not ${keyFingerprint(pinned)} pinned ${when}; refusing to connect (someone may be intercepting; if the machine was rebuilt, re-create it)`,
  );
}

/** `SHA256:...` as ssh-keygen -l prints it, of a raw public key blob. */
export function keyFingerprint(blob: Buffer): string {
  return `SHA256:${createHash("sha256").update(blob).digest("base64").replace(/=+$/, "")}`;
}

/** The raw key blob of an OpenSSH public key line ("ssh-ed25519 AAAA... comment"). */
export function publicKeyBlob(line: string): Buffer {
  const b64 = line.trim().split(/\s+/)[1];
  if (!b64) throw new InvalidError(`not an OpenSSH public key: ${JSON.stringify(line.slice(0, 40))}`, { step: "ssh" });
  return Buffer.from(b64, "base64");
}

export interface SshExecOptions {
  signal?: AbortSignal;
  /** Limit for the remote command; default none. */
  timeoutMs?: number;
  /** Written to the command's stdin, which is then closed. */
  input?: string | Buffer;
}

export interface SshExecResult {
  stdout: string;
  stderr: string;
  /** Exit status; null when the command was killed by a signal or the connection dropped. */
  code: number | null;
  signal: string | null;
}

/**
 * The error for an SSH failure: InvalidError for causes the user fixes (key, user), otherwise
 * UnavailableError (worth retrying). `details.reason` says which.
 */
export function sshError(endpoint: string, reason: SshFailure, message: string): DomainError {
  const text = `ssh ${endpoint}: ${message}`;
  const details = { step: "ssh", endpoint, reason };
  return reason === "auth" ? new InvalidError(text, details) : new UnavailableError(text, details);
}

function classify(err: Error & { code?: string; level?: string }, host: string, user: string): [SshFailure, string] {
  if (err.level === "client-authentication") return ["auth", `authentication failed for ${user}`];
  switch (err.code) {
    case "ECONNREFUSED":
      return ["refused", "connection refused"];
    case "EHOSTUNREACH":
    case "ENETUNREACH":
      return ["unreachable", "host unreachable"];
    case "ENOTFOUND":
    case "EAI_AGAIN":
      return ["dns", `cannot resolve ${host}`];
    case "ECONNRESET":
    case "EPIPE":
      return ["closed", "connection reset during the handshake"];
  }
  return ["handshake", `handshake failed: ${err.message}`];
}

/** An open SSH connection. Close it when done. */
export class SshConnection {
  constructor(
    readonly client: Client,
    /** "198.18.0.3:22", for messages. */
    readonly endpoint: string,
  ) {}

  /** Runs one command. A non-zero exit is a result, not an error; transport failures throw. */
  exec(command: string, options: SshExecOptions = {}): Promise<SshExecResult> {
    const { signal, timeoutMs, input } = options;
    signal?.throwIfAborted();
    return new Promise((resolve, reject) => {
      let channel: ClientChannel | undefined;
      let settled = false;
      const out: Buffer[] = [];
      const err: Buffer[] = [];
      let code: number | null = null;
      let exitSignal: string | null = null;
      const settle = (fn: () => void) => {
        if (settled) return;
        settled = true;
        if (timer) clearTimeout(timer);
        signal?.removeEventListener("abort", onAbort);
        fn();
      };
      const stop = () => {
        channel?.close();
      };
      const onAbort = () => {
        stop();
        settle(() => reject(signal!.reason));
      };
      const timer =
        timeoutMs === undefined
          ? undefined
          : setTimeout(() => {
              stop();
              settle(() => reject(sshError(this.endpoint, "timeout", `\`${command}\` timed out after ${formatDuration(timeoutMs)}`)));
            }, timeoutMs);
      signal?.addEventListener("abort", onAbort, { once: true });
      this.client.exec(command, (e, stream) => {
        if (e) {
          settle(() => reject(sshError(this.endpoint, "exec", `exec \`${command}\`: ${e.message}`)));
          return;
        }
        channel = stream;
        if (settled) {
          stream.close();
          return;
        }
        stream.on("data", (b: Buffer) => out.push(b));
        stream.stderr.on("data", (b: Buffer) => err.push(b));
        stream.on("exit", (c: number | null, s?: string) => {
          code = typeof c === "number" ? c : null;
          exitSignal = s ?? null;
        });
        stream.on("close", () =>
          settle(() =>
            resolve({
              stdout: Buffer.concat(out).toString("utf8"),
              stderr: Buffer.concat(err).toString("utf8"),
              code,
              signal: exitSignal,
            }),
          ),
        );
        if (input !== undefined) stream.end(input);
        else stream.end();
      });
    });
  }

  close(): void {
    this.client.end();
  }
}

/**
 * Connects and authenticates with a private key. Rejects with sshError(...) or the signal's reason.
 * With `hostKeyPin` and nothing pinned there yet, the key presented by this login is pinned (of
 * two first connections racing, the second must present the same key).
 */
export async function sshConnect(options: SshConnectOptions): Promise<SshConnection> {
  const pin = options.hostKeyPin;
  if (options.hostKey || !pin) return connectOnce(options);
  const when = `at the first connection (in ${pin.where})`;
  const pinned = await pin.read();
  if (pinned) return connectOnce({ ...options, hostKey: pinned, pinnedWhen: when });
  let presented: Buffer | undefined;
  const conn = await connectOnce({
    ...options,
    hostVerifier: (key) => {
      presented = key;
      return true;
    },
  });
  let now: string;
  try {
    now = await pin.pinFirst(publicKeyLine(presented!));
  } catch (e) {
    conn.close();
    throw e;
  }
  const other = publicKeyBlob(now);
  if (!other.equals(presented!)) {
    conn.close();
    throw hostKeyChanged(conn.endpoint, options.machine, presented!, other, when);
  }
  return conn;
}

function connectOnce(options: SshConnectOptions & { pinnedWhen?: string }): Promise<SshConnection> {
  const { host, port, user, signal } = options;
  const timeoutMs = options.timeoutMs ?? 10_000;
  const endpoint = hostPort(host, port);
  signal?.throwIfAborted();
  return new Promise((resolve, reject) => {
    const client = new Client();
    let settled = false;
    const settle = (fn: () => void) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      signal?.removeEventListener("abort", onAbort);
      fn();
    };
    const fail = (e: unknown) => {
      client.destroy();
      settle(() => reject(e));
    };
    const onAbort = () => fail(signal!.reason);
    const pinned = options.hostKey ? publicKeyBlob(options.hostKey) : undefined;
    let presented: Buffer | undefined;
    // Our own timer rather than ssh2's readyTimeout, so the message and the limit are the same
    // whether the TCP connect, the key exchange or the authentication is what hangs.
    const timer = setTimeout(() => fail(sshError(endpoint, "timeout", `timed out after ${formatDuration(timeoutMs)}`)), timeoutMs);
    signal?.addEventListener("abort", onAbort, { once: true });
    client.once("ready", () => settle(() => resolve(new SshConnection(client, endpoint))));
    client.on("error", (e: Error & { code?: string; level?: string }) => {
      if (pinned && presented && !presented.equals(pinned)) {
        fail(hostKeyChanged(endpoint, options.machine, presented, pinned, options.pinnedWhen ?? "when it was created"));
        return;
      }
      const [reason, message] = classify(e, host, user);
      fail(sshError(endpoint, reason, message));
    });
    client.once("close", () => fail(sshError(endpoint, "closed", "connection closed by the server before login")));
    const config: ConnectConfig = {
      host,
      port,
      username: user,
      privateKey: options.privateKey,
      readyTimeout: timeoutMs + 1000,
      // Offer only the key: no password prompts, no agent, no keyboard-interactive.
      authHandler: ["publickey"],
      hostVerifier: pinned
        ? (key: Buffer) => {
            presented = key;
            return key.equals(pinned);
          }
        : (options.hostVerifier ?? (() => true)),
    };
    try {
      client.connect(config);
    } catch (e) {
      // ssh2 throws synchronously for a key it cannot parse.
      fail(new InvalidError(`ssh ${endpoint}: unusable private key: ${(e as Error).message}`, { step: "ssh", endpoint, reason: "auth" }));
    }
  });
}

/** Connect, run one command, close. */
export async function sshRun(options: SshConnectOptions, command: string, exec: SshExecOptions = {}): Promise<SshExecResult> {
  const conn = await sshConnect(options);
  try {
    return await conn.exec(command, { signal: options.signal, ...exec });
  } finally {
    conn.close();
  }
}

/**
 * Reads a private key file and checks ssh2 can use it. `flag` names the option it came from, so
 * the error says which flag to fix. Encrypted keys are refused: there is nobody to type a passphrase.
 */
export async function readPrivateKey(path: string, flag?: string): Promise<Buffer> {
  const where = flag ? `--${flag} ${path}` : path;
  const field = flag ? { field: flag } : {};
  let data: Buffer;
  try {
    data = await readFile(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new InvalidError(`${where}: ${code === "ENOENT" ? "no such file" : `cannot read: ${(e as Error).message}`}`, field);
  }
  const parsed = utils.parseKey(data);
  if (parsed instanceof Error) {
    const encrypted = /encrypted|passphrase/i.test(parsed.message) || /ENCRYPTED|bcrypt/.test(data.toString("latin1"));
    throw new InvalidError(
      `${where}: ${encrypted ? "the key is encrypted; use a key without a passphrase" : `not a usable private key (${parsed.message})`}`,
      field,
    );
  }
  return data;
}
