/**
 * A task's secrets and configs (the create body's `FlotillaFiles`): written at create on a tmpfs
 * of the agent's own (never on disk), one directory per container, each file with the asked
 * owner and mode; bound read-only into the container at every start; removed with the container.
 * The container's record keeps only the targets, so inspect, the record on disk and any log show
 * where the files are, never what they hold.
 */
import { execFile } from "node:child_process";
import * as fs from "node:fs/promises";
import { join, posix } from "node:path";
import { promisify } from "node:util";
import { InvalidError, MAX_SECRET_BYTES } from "@flotilla/core";
import { HttpError } from "../engine-errors";

const run = promisify(execFile);
const TMPFS_MAGIC = 0x01021994;
/** At most this many files per container (swarm has no limit; this keeps a body bounded). */
const MAX_FILES = 256;

/** A file as the create body gives it. */
export interface TaskFile {
  target: string;
  data: Buffer;
  uid: number;
  gid: number;
  mode: number;
}

/** What the record keeps of a file: where it goes, not what it holds. */
export interface TaskFileRef {
  target: string;
}

const bad = (message: string): never => {
  throw new InvalidError(message, { field: "FlotillaFiles" });
};

/** Validates `FlotillaFiles`; the error never quotes a value. */
export function parseTaskFiles(raw: unknown): TaskFile[] {
  if (raw === undefined || raw === null) return [];
  if (!Array.isArray(raw)) return bad("FlotillaFiles must be a list");
  if (raw.length > MAX_FILES) bad(`FlotillaFiles: at most ${MAX_FILES} files`);
  const seen = new Set<string>();
  return raw.map((f: unknown, i) => {
    const at = `FlotillaFiles[${i}]`;
    if (typeof f !== "object" || f === null) return bad(`${at} must be an object`);
    const { Target, Data, UID, GID, Mode } = f as Record<string, unknown>;
    if (typeof Target !== "string" || !posix.isAbsolute(Target) || posix.normalize(Target) !== Target || Target.endsWith("/"))
      bad(`${at}.Target must be a normalized absolute file path`);
    if (seen.has(Target as string)) bad(`${at}.Target ${Target as string} is used twice`);
    seen.add(Target as string);
    if (typeof Data !== "string" || !/^[A-Za-z0-9+/]*={0,2}$/.test(Data)) bad(`${at}.Data must be base64`);
    const data = Buffer.from(Data as string, "base64");
    if (data.length > MAX_SECRET_BYTES) bad(`${at}: ${data.length} bytes, more than ${MAX_SECRET_BYTES}`);
    for (const [k, v, max] of [
      ["UID", UID, 0xfffffffe],
      ["GID", GID, 0xfffffffe],
      ["Mode", Mode, 0o777],
    ] as const) {
      if (typeof v !== "number" || !Number.isInteger(v) || v < 0 || v > max) bad(`${at}.${k} must be a whole number from 0 to ${max}`);
    }
    return { target: Target as string, data, uid: UID as number, gid: GID as number, mode: Mode as number };
  });
}

/** The files' directory tree: `<dir>/<container id>/<n>`, on a tmpfs the agent mounts on first use. */
export class TaskFiles {
  private ready?: Promise<void>;

  constructor(private readonly dir: string) {}

  /** Makes sure `dir` is a tmpfs only root may enter (mounted once; kept across agent restarts). */
  private ensureTmpfs(): Promise<void> {
    return (this.ready ??= (async () => {
      await fs.mkdir(this.dir, { recursive: true, mode: 0o700 });
      if ((await fs.statfs(this.dir)).type !== TMPFS_MAGIC) {
        await run("mount", ["-t", "tmpfs", "-o", "mode=0700,nosuid,nodev,noexec", "flotilla-task-files", this.dir]).catch((e: unknown) => {
          throw new HttpError(
            500,
            `task files: mount a tmpfs on ${this.dir}: ${(e as { stderr?: string }).stderr?.trim() || (e as Error).message}`,
          );
        });
      }
      await fs.chmod(this.dir, 0o700);
    })().catch((e: unknown) => {
      this.ready = undefined;
      throw e;
    }));
  }

  private containerDir(id: string): string {
    return join(this.dir, id);
  }

  /** Writes a new container's files; returns what its record keeps. Nothing is left behind on failure. */
  async write(id: string, files: readonly TaskFile[]): Promise<TaskFileRef[]> {
    if (files.length === 0) return [];
    await this.ensureTmpfs();
    const dir = this.containerDir(id);
    try {
      await fs.mkdir(dir, { mode: 0o700 });
      for (const [i, f] of files.entries()) {
        const path = join(dir, String(i));
        // Created 0600 by root, then handed over: never readable by anyone else in between.
        await fs.writeFile(path, f.data, { mode: 0o600, flag: "wx" });
        await fs.chown(path, f.uid, f.gid);
        await fs.chmod(path, f.mode);
      }
    } catch (e) {
      await this.remove(id);
      throw e;
    }
    return files.map((f) => ({ target: f.target }));
  }

  /** The bind mounts of a container's files, for the shim; refused when they are gone (the host restarted). */
  async mounts(id: string, refs: readonly TaskFileRef[]): Promise<{ type: "bind"; source: string; target: string; readOnly: true }[]> {
    const out = [];
    for (const [i, r] of refs.entries()) {
      const source = join(this.containerDir(id), String(i));
      await fs.stat(source).catch(() => {
        throw new HttpError(
          500,
          `the container's secret and config files are gone (the host restarted since it was created): remove it and create it again (${r.target})`,
        );
      });
      out.push({ type: "bind" as const, source, target: r.target, readOnly: true as const });
    }
    return out;
  }

  /** Removes a container's files (nothing to do when it had none). */
  async remove(id: string): Promise<void> {
    await fs.rm(this.containerDir(id), { recursive: true, force: true });
  }
}
