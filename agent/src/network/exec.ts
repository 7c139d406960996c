/**
 * Runs the kernel's command-line tools (ip, iptables) and turns their failures into errors that
 * name the step, the exact command and the tool's own words, e.g.
 * `veth: ip link add veth1a2b3c4 type veth peer name eth0 ...: exit 2: RTNETLINK answers: File exists`.
 */
import { spawn } from "node:child_process";

/** A command of a network setup step failed (exit status ≠ 0, or it could not be started). */
export class NetworkCommandError extends Error {
  constructor(
    /** Which step of the setup failed: "bridge", "veth", "iptables nat", … */
    readonly step: string,
    /** The command line as run. */
    readonly command: string,
    /** Exit status, or the spawn error code (ENOENT…) when it never ran. */
    readonly exitCode: number | string,
    /** What the tool wrote on stderr, trimmed. */
    readonly stderr: string,
  ) {
    super(`${step}: ${command}: exit ${exitCode}: ${stderr || "(no message)"}`);
    this.name = "NetworkCommandError";
  }
}

/** Options of run(). */
export interface RunOptions {
  /** Written to the command's stdin (iptables-restore scripts). */
  input?: string;
  /** Kill it after this long; iptables can wait on the xtables lock. Default 30 s. */
  timeoutMs?: number;
}

/** Runs `cmd args…` without a shell; resolves with stdout, rejects with NetworkCommandError. */
export function run(step: string, cmd: string, args: readonly string[], opts: RunOptions = {}): Promise<string> {
  const command = [cmd, ...args].join(" ");
  return new Promise((resolve, reject) => {
    // LC_ALL=C: we match a few of the tools' messages ("does not exist"), so they must be English.
    const child = spawn(cmd, args, {
      stdio: ["pipe", "pipe", "pipe"],
      env: { ...process.env, LC_ALL: "C" },
      timeout: opts.timeoutMs ?? 30_000,
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on("data", (b: Buffer) => out.push(b));
    child.stderr.on("data", (b: Buffer) => err.push(b));
    child.on("error", (e: NodeJS.ErrnoException) => reject(new NetworkCommandError(step, command, e.code ?? "spawn", e.message)));
    child.on("close", (code, signal) => {
      const stderr = Buffer.concat(err).toString("utf8").trim();
      if (code === 0) resolve(Buffer.concat(out).toString("utf8"));
      else reject(new NetworkCommandError(step, command, code ?? `signal ${signal}`, stderr));
    });
    // A tool that exits before reading stdin makes the write fail with EPIPE; its exit status
    // tells the real story, so that error is dropped.
    child.stdin.on("error", () => undefined);
    child.stdin.end(opts.input ?? "");
  });
}

/** True when the error is a failed command whose message says the object is not there. */
export function isMissing(e: unknown): boolean {
  return (
    e instanceof NetworkCommandError &&
    /does not exist|Cannot find device|No such file or directory|not found|No such device/i.test(e.stderr)
  );
}
