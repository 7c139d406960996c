// The SSH side of provisioning: a root shell on the host (sudo -n for other users), opened with
// patience for a freshly booted sshd, and the step wrapper that names what failed.
import { DomainError, UnavailableError } from "@flotilla/core";
import { readPrivateKey, sleep, sshConnect, type SshConnection, type SshEndpoint } from "@flotilla/drivers";

/** Runs `fn` as step `step`, turning any failure into "provision <name>: <step>: <cause>". */
export async function step<T>(what: string, machine: string, name: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    if ((e as Error)?.name === "AbortError" || (e as { code?: string })?.code === "ABORT_ERR") throw e;
    const cause = e instanceof Error ? e.message : String(e);
    const message = `${what} ${machine}: ${name}: ${cause}`;
    const details = { ...(e instanceof DomainError ? e.details : {}), step: name };
    const wrapped = e instanceof DomainError ? new DomainError(e.kind, message, details) : new UnavailableError(message, details);
    wrapped.cause = e;
    throw wrapped;
  }
}

/** A connection that runs commands as root (through `sudo -n` for other users). */
export class RootShell {
  constructor(
    readonly conn: SshConnection,
    private readonly user: string,
    private readonly signal?: AbortSignal,
  ) {}

  /** Runs a shell command as root; non-zero exit throws with the command's stderr. */
  async run(script: string, input?: string | Buffer): Promise<string> {
    const quoted = `'${script.replace(/'/g, `'\\''`)}'`;
    const command = this.user === "root" ? `sh -c ${quoted}` : `sudo -n sh -c ${quoted}`;
    const res = await this.conn.exec(command, { signal: this.signal, input });
    if (res.code !== 0) {
      const why = (res.stderr.trim() || res.stdout.trim()).split("\n").slice(-3).join(" | ") || `exit ${res.code ?? res.signal}`;
      throw new UnavailableError(why, { exitCode: res.code, stderr: res.stderr });
    }
    return res.stdout;
  }

  /** Runs a command; resolves with its exit code instead of throwing. */
  async test(script: string): Promise<number | null> {
    const quoted = `'${script.replace(/'/g, `'\\''`)}'`;
    const res = await this.conn.exec(this.user === "root" ? `sh -c ${quoted}` : `sudo -n sh -c ${quoted}`, { signal: this.signal });
    return res.code;
  }

  /** Writes a file as root with `mode`, via stdin (no temp file readable by others). */
  async writeFile(path: string, content: string | Buffer, mode: number): Promise<void> {
    const dir = path.slice(0, path.lastIndexOf("/")) || "/";
    const m = mode.toString(8);
    await this.run(
      `umask 077 && mkdir -p '${dir}' && cat > '${path}.tmp' && chmod ${m} '${path}.tmp' && mv -f '${path}.tmp' '${path}'`,
      content,
    );
  }

  close(): void {
    this.conn.close();
  }
}

// A freshly booted host's sshd can accept TCP and still drop or refuse the first sessions; wait
// out those, never an authentication failure (the key is wrong: say so at once).
const SSH_TRANSIENT = new Set(["refused", "closed", "handshake"]);
const SSH_WAIT_MS = 30_000;
/**
 * One connection attempt's limit when the caller gives none: a VM under software emulation (TCG)
 * on a busy host can take well over 10 s for sshd's key exchange.
 */
const SSH_CONNECT_MS = 30_000;

export async function openShell(target: {
  ssh: SshEndpoint;
  signal?: AbortSignal;
  sshTimeoutMs?: number;
  machineName: string;
}): Promise<RootShell> {
  const { ssh, signal } = target;
  const privateKey = await readPrivateKey(ssh.keyPath);
  const deadline = Date.now() + SSH_WAIT_MS;
  for (let delay = 250; ; delay = Math.min(delay * 2, 2_000)) {
    try {
      const conn = await sshConnect({
        host: ssh.host,
        port: ssh.port,
        user: ssh.user,
        privateKey,
        signal,
        timeoutMs: target.sshTimeoutMs ?? SSH_CONNECT_MS,
        machine: target.machineName,
        // The driver's own key (netns), else trust on first use in the machine store.
        ...(ssh.hostKey && !ssh.hostKeyPin ? { hostKey: ssh.hostKey } : {}),
        ...(ssh.hostKeyPin ? { hostKeyPin: ssh.hostKeyPin } : {}),
      });
      return new RootShell(conn, ssh.user, signal);
    } catch (e) {
      const reason = (e as { details?: { reason?: string } }).details?.reason;
      if (!reason || !SSH_TRANSIENT.has(reason) || Date.now() + delay > deadline) throw e;
      await sleep(delay, signal);
    }
  }
}
