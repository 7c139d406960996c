// A throwaway OpenSSH server on 127.0.0.1 for integration tests: its own host key, config,
// authorized_keys and port, in a temp dir. Logins are key-only, as the current user (root in CI).
//
//   const sshd = await startSshd({ authorizedKeys: [publicKeyLine] });
//   ... connect to sshd.host:sshd.port as sshd.user ...
//   await sshd.stop();
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, Socket } from "node:net";
import { tmpdir, userInfo } from "node:os";
import { join } from "node:path";

export interface SshdOptions {
  /** authorized_keys lines ("ssh-ed25519 AAAA... comment"). */
  authorizedKeys: readonly string[];
  /** Extra sshd_config lines (e.g. "MaxStartups 1"). */
  extraConfig?: readonly string[];
  /** Path of the sshd binary; default /usr/sbin/sshd. */
  sshdPath?: string;
  /** Port on 127.0.0.1; default a free one. A test that swaps a host's sshd reuses the old one's. */
  port?: number;
  /** How long to wait for the port to accept connections. */
  startTimeoutMs?: number;
}

export interface SshdHandle {
  host: "127.0.0.1";
  port: number;
  /** The user keys are authorized for (the user running the tests). */
  user: string;
  dir: string;
  /** Host public key line, for tests that pin it. */
  hostPublicKey: string;
  /** sshd's own log so far (-e sends it to stderr); attach it to failures. */
  log(): string;
  stop(): Promise<void>;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const a = srv.address();
      srv.close(() => resolve(typeof a === "object" && a ? a.port : 0));
    });
  });
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = new Socket();
    s.once("connect", () => {
      s.destroy();
      resolve(true);
    });
    s.once("error", () => resolve(false));
    s.connect(port, "127.0.0.1");
  });
}

export async function startSshd(options: SshdOptions): Promise<SshdHandle> {
  const sshd = options.sshdPath ?? "/usr/sbin/sshd";
  if (!existsSync(sshd)) throw new Error(`startSshd: ${sshd} not found (install openssh-server)`);
  const dir = mkdtempSync(join(tmpdir(), "flotilla-sshd-"));
  const hostKey = join(dir, "ssh_host_ed25519_key");
  execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "flotilla-test-sshd", "-f", hostKey]);
  chmodSync(hostKey, 0o600);
  const authorizedKeys = join(dir, "authorized_keys");
  writeFileSync(authorizedKeys, options.authorizedKeys.map((k) => k.trim() + "\n").join(""), { mode: 0o600 });
  // Privilege separation directory; sshd refuses to start without it when run as root.
  if (process.getuid?.() === 0) mkdirSync("/run/sshd", { recursive: true, mode: 0o755 });

  const port = options.port ?? (await freePort());
  const config = join(dir, "sshd_config");
  writeFileSync(
    config,
    [
      `Port ${port}`,
      "ListenAddress 127.0.0.1",
      `HostKey ${hostKey}`,
      `PidFile ${join(dir, "sshd.pid")}`,
      // An absolute path: the same file for every user, outside their home.
      `AuthorizedKeysFile ${authorizedKeys}`,
      "PubkeyAuthentication yes",
      "PasswordAuthentication no",
      "KbdInteractiveAuthentication no",
      "PermitRootLogin prohibit-password",
      // The temp dir's modes are not what StrictModes wants, and it does not matter here.
      "StrictModes no",
      "UsePAM no",
      "PrintMotd no",
      "LogLevel VERBOSE",
      "Subsystem sftp internal-sftp",
      ...(options.extraConfig ?? []),
      "",
    ].join("\n"),
  );

  let output = "";
  const child: ChildProcess = spawn(sshd, ["-D", "-e", "-f", config], { stdio: ["ignore", "ignore", "pipe"] });
  child.stderr!.on("data", (b: Buffer) => (output += b.toString("utf8")));
  let exited: string | undefined;
  child.once("exit", (code, sig) => (exited = `sshd exited (${code ?? sig})`));
  child.once("error", (e) => (exited = `sshd failed to start: ${e.message}`));

  const deadline = Date.now() + (options.startTimeoutMs ?? 10_000);
  while (!(await accepts(port))) {
    if (exited || Date.now() > deadline) {
      child.kill("SIGKILL");
      rmSync(dir, { recursive: true, force: true });
      throw new Error(`startSshd: ${exited ?? "port never opened"} on 127.0.0.1:${port}\n${output}`);
    }
    await new Promise((r) => setTimeout(r, 25));
  }

  const hostPublicKey = execFileSync("ssh-keygen", ["-y", "-f", hostKey], { encoding: "utf8" }).trim();
  return {
    host: "127.0.0.1",
    port,
    user: userInfo().username,
    dir,
    hostPublicKey,
    log: () => output,
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) {
        const gone = new Promise((r) => child.once("exit", r));
        child.kill("SIGTERM");
        await Promise.race([gone, new Promise((r) => setTimeout(r, 3000))]);
        if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
