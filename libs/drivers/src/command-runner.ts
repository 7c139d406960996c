// Runs external tools (VBoxManage, powershell.exe) with an AbortSignal and a time limit.
// Injectable so tests and development setups can point drivers at stand-ins through PATH.
import { spawn } from "node:child_process";
import { delimiter } from "node:path";
import { UnavailableError } from "@flotilla/core";
import { formatDuration } from "./net";

export interface CommandResult {
  command: string;
  args: readonly string[];
  stdout: string;
  stderr: string;
  exitCode: number;
}

export interface RunOptions {
  signal?: AbortSignal;
  /** Kill the command after this long; default from the runner. */
  timeoutMs?: number;
  /** Written to the command's stdin, which is then closed. */
  input?: string | Uint8Array;
}

/**
 * Runs one command and resolves with its output for ANY exit code: drivers decide what a non-zero
 * exit means (a missing VM is a state, not always a failure). Rejects only when the command could
 * not run (UnavailableError, `details.reason` "not-found" | "not-executable" | "timeout") or the
 * signal aborted (with the signal's reason).
 */
export interface CommandRunner {
  run(command: string, args: readonly string[], options?: RunOptions): Promise<CommandResult>;
}

export interface ExecRunnerOptions {
  /** Environment of the commands; default: this process's. */
  env?: NodeJS.ProcessEnv;
  /** Directories put in front of PATH (e.g. the stand-ins' directory). */
  pathPrepend?: readonly string[];
  /** Command name → executable path, for tools that are not on PATH. */
  commands?: Readonly<Record<string, string>>;
  /** Default time limit per command. */
  timeoutMs?: number;
}

function withPath(env: NodeJS.ProcessEnv, prepend: readonly string[]): NodeJS.ProcessEnv {
  if (prepend.length === 0) return env;
  // Windows spells it "Path"; keep whichever spelling is there.
  const key = Object.keys(env).find((k) => k.toUpperCase() === "PATH") ?? "PATH";
  const rest = env[key] ? [env[key]] : [];
  return { ...env, [key]: [...prepend, ...rest].join(delimiter) };
}

/** A CommandRunner over child_process.spawn (no shell: arguments are passed as they are). */
export function createExecRunner(options: ExecRunnerOptions = {}): CommandRunner {
  const env = withPath(options.env ?? process.env, options.pathPrepend ?? []);
  const defaultTimeout = options.timeoutMs ?? 120_000;
  return {
    run(command, args, runOptions = {}) {
      const { signal, input } = runOptions;
      const timeoutMs = runOptions.timeoutMs ?? defaultTimeout;
      const executable = options.commands?.[command] ?? command;
      signal?.throwIfAborted();
      return new Promise<CommandResult>((resolve, reject) => {
        const child = spawn(executable, [...args], { env, stdio: ["pipe", "pipe", "pipe"], windowsHide: true });
        const out: Buffer[] = [];
        const err: Buffer[] = [];
        let settled = false;
        const settle = (fn: () => void) => {
          if (settled) return;
          settled = true;
          clearTimeout(timer);
          signal?.removeEventListener("abort", onAbort);
          fn();
        };
        const step = `${command}${args.length > 0 ? ` ${args[0]}` : ""}`;
        // Reject only once the killed process is gone (or after a grace period): a caller that
        // cleans up next must not race a tool that is still holding its locks.
        const killThen = (error: unknown) => {
          if (settled) return;
          settled = true;
          clearTimeout(timer);
          signal?.removeEventListener("abort", onAbort);
          const grace = setTimeout(() => reject(error), 2000);
          child.once("exit", () => {
            clearTimeout(grace);
            reject(error);
          });
          if (child.exitCode !== null || child.signalCode !== null || !child.kill("SIGKILL")) {
            clearTimeout(grace);
            reject(error);
          }
        };
        const timer = setTimeout(
          () =>
            killThen(new UnavailableError(`${step}: timed out after ${formatDuration(timeoutMs)}`, { reason: "timeout", command, args })),
          timeoutMs,
        );
        const onAbort = () => killThen(signal!.reason);
        signal?.addEventListener("abort", onAbort, { once: true });
        child.stdout.on("data", (b: Buffer) => out.push(b));
        child.stderr.on("data", (b: Buffer) => err.push(b));
        // A tool that exits without reading its stdin makes the write fail with EPIPE; its exit
        // status is what matters, so the stream error is ignored.
        child.stdin.on("error", () => {});
        child.once("error", (e: NodeJS.ErrnoException) => {
          const reason = e.code === "ENOENT" ? "not-found" : e.code === "EACCES" ? "not-executable" : "spawn-failed";
          const text =
            reason === "not-found"
              ? `${command}: not found on PATH`
              : reason === "not-executable"
                ? `${command}: not executable (${executable})`
                : `${command}: could not start: ${e.message}`;
          settle(() => reject(new UnavailableError(text, { reason, command, args })));
        });
        child.once("close", (code, sig) => {
          settle(() =>
            resolve({
              command,
              args,
              stdout: Buffer.concat(out).toString("utf8"),
              stderr: Buffer.concat(err).toString("utf8"),
              exitCode: code ?? (sig ? 128 : 1),
            }),
          );
        });
        if (input !== undefined) child.stdin.end(input);
        else child.stdin.end();
      });
    },
  };
}

/** The most telling line of a failed command's output, for error messages. */
export function errorExcerpt(result: Pick<CommandResult, "stdout" | "stderr">): string {
  const lines = (result.stderr.trim() ? result.stderr : result.stdout)
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter(Boolean);
  // VBoxManage may print progress or warnings before its "error:" line; PowerShell's first line is
  // "Cmdlet : message", and the record details after it only repeat the cmdlet's name.
  const line = lines.find((l) => /\berror:/i.test(l)) ?? lines[0] ?? "no output";
  return line.length > 400 ? `${line.slice(0, 400)}…` : line;
}

/** "VBoxManage createvm: exit 1: VBoxManage: error: ..." — names the step and keeps the tool's words. */
export function commandFailed(step: string, result: CommandResult): UnavailableError {
  return new UnavailableError(`${step}: exit ${result.exitCode}: ${errorExcerpt(result)}`, {
    step,
    command: result.command,
    args: result.args,
    exitCode: result.exitCode,
    stderr: result.stderr,
  });
}
