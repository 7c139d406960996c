// `ctl machine ssh|scp|mount`: OpenSSH's tools (and sshfs) run with the machine's key and its
// pinned host key, from the SSH endpoint the API gives (GET /machines/{name}/ssh).
import { spawn } from "node:child_process";
import { accessSync, constants, mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { delimiter, join, resolve } from "node:path";
import type { Command } from "commander";
import { ApiClient, CtlError, loadCtlConfig } from "../client";

const api = () => new ApiClient(loadCtlConfig());
const path = (name: string, rest = "") => `/api/v1/machines/${encodeURIComponent(name)}${rest}`;

/** `MACHINE:PATH` (a machine name, then a colon); the path may be empty (the login's home). */
const REMOTE = /^([A-Za-z0-9][A-Za-z0-9.-]*):(.*)$/;

interface SshInfo {
  host: string;
  port: number;
  user: string;
  keyPath: string;
  hostKey?: string;
}

function runInherit(command: string, args: string[]): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: "inherit" });
    child.once("error", (e) => reject(new CtlError(`${command}: ${e.message}`)));
    child.once("exit", (code, sig) => resolve(code ?? (sig ? 128 : 1)));
  });
}

/** The first of `names` found as an executable on PATH. */
function onPath(...names: string[]): string | undefined {
  for (const name of names) {
    for (const dir of (process.env.PATH ?? "").split(delimiter).filter(Boolean)) {
      try {
        accessSync(join(dir, name), constants.X_OK);
        return name;
      } catch {
        // not in this directory
      }
    }
  }
  return undefined;
}

/**
 * ssh/scp options for a machine: OpenSSH checks the host key strictly against a known_hosts file
 * of the one key pinned for it (the key its driver made, or the one first seen), so a changed key
 * is refused. Without a pinned key there is nothing to check against: refuse rather than trust.
 */
export function sshOpts(name: string, ep: SshInfo): string[] {
  const common = ["-o", "LogLevel=ERROR", "-o", "IdentitiesOnly=yes"];
  if (!ep.hostKey)
    throw new CtlError(
      `machine ${name}: no SSH host key is pinned for it, so its identity cannot be checked; run \`ctl machine provision ${name}\``,
    );
  const dir = mkdtempSync(join(tmpdir(), "ctl-known-hosts-"));
  const file = join(dir, "known_hosts");
  const host = ep.port === 22 ? ep.host : `[${ep.host}]:${ep.port}`;
  writeFileSync(file, `${host} ${ep.hostKey}\n`, { mode: 0o600 });
  process.once("exit", () => rmSync(dir, { recursive: true, force: true }));
  return ["-o", "StrictHostKeyChecking=yes", "-o", `UserKnownHostsFile=${file}`, "-o", "GlobalKnownHostsFile=/dev/null", ...common];
}

/** The local mount point: an existing directory, or a CtlError naming it. */
function mountPoint(local: string): string {
  const dir = resolve(local);
  const st = statSync(dir, { throwIfNoEntry: false });
  if (!st) throw new CtlError(`mount point ${local}: no such directory (create it first)`);
  if (!st.isDirectory()) throw new CtlError(`mount point ${local}: not a directory`);
  return dir;
}

export function registerMachineSsh(machine: Command): void {
  machine
    .command("ssh <name> [command...]")
    .description("log into a machine, or run a command on it, with the machine's key")
    .allowUnknownOption()
    .action(async (name: string, command: string[]) => {
      const ep = await api().request<SshInfo>("GET", path(name, "/ssh"));
      const tty = command.length === 0 && process.stdin.isTTY ? ["-t"] : [];
      process.exitCode = await runInherit("ssh", [
        ...sshOpts(name, ep),
        ...tty,
        "-i",
        ep.keyPath,
        "-p",
        String(ep.port),
        `${ep.user}@${ep.host}`,
        ...command,
      ]);
    });

  machine
    .command("scp <source> <destination>")
    .description("copy files to or from a machine: ctl machine scp ./f devdays:/tmp/f")
    .option("-r, --recursive", "copy directories")
    .action(async (source: string, destination: string, opts: { recursive?: boolean }) => {
      const remote = [source, destination].map((s) => REMOTE.exec(s));
      const names = [...new Set(remote.filter(Boolean).map((m) => m![1]))];
      if (names.length !== 1) throw new CtlError("exactly one machine must be named (MACHINE:PATH) in the source or the destination");
      const ep = await api().request<SshInfo>("GET", path(names[0], "/ssh"));
      const map = (s: string, m: RegExpExecArray | null) => (m ? `${ep.user}@${ep.host}:${m[2]}` : s);
      process.exitCode = await runInherit("scp", [
        ...sshOpts(names[0]!, ep),
        ...(opts.recursive ? ["-r"] : []),
        "-i",
        ep.keyPath,
        "-P",
        String(ep.port),
        map(source, remote[0]),
        map(destination, remote[1]),
      ]);
    });

  machine
    .command("mount <remote> <local>")
    .description("mount a machine's directory here with sshfs: ctl machine mount devdays:/srv/data ./data (-u unmounts)")
    .option("-u, --unmount", "unmount LOCAL instead")
    .action(async (remote: string, local: string, opts: { unmount?: boolean }) => {
      const m = REMOTE.exec(remote);
      if (!m) throw new CtlError(`expected MACHINE:PATH, got ${JSON.stringify(remote)}`);
      const dir = mountPoint(local);
      if (opts.unmount) {
        // fusermount on Linux (fuse3's name first); umount where FUSE mounts are plain mounts (macOS).
        const tool = onPath("fusermount3", "fusermount") ?? "umount";
        process.exitCode = await runInherit(tool, tool === "umount" ? [dir] : ["-u", dir]);
        return;
      }
      if (!onPath("sshfs")) {
        throw new CtlError(
          "machine mount needs sshfs, which is not installed: apt-get install sshfs (Debian, Ubuntu), or macFUSE and sshfs on macOS",
        );
      }
      const ep = await api().request<SshInfo>("GET", path(m[1], "/ssh"));
      // sshfs takes ssh's -o options itself, and connects before it goes to the background, so
      // the known_hosts file sshOpts writes for this process's lifetime is enough.
      process.exitCode = await runInherit("sshfs", [
        ...sshOpts(m[1]!, ep),
        "-o",
        `IdentityFile=${ep.keyPath}`,
        "-p",
        String(ep.port),
        `${ep.user}@${ep.host}:${m[2]}`,
        dir,
      ]);
    });
}
