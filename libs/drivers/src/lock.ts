// A host-wide lock: an in-process queue (no polling between callers in one process) plus a lock
// file created with O_EXCL (between processes on the same host). A lock file whose owner process
// is gone is stale and taken over, so a crashed create never blocks the host forever.
import { randomUUID } from "node:crypto";
import { open, readFile, stat, unlink } from "node:fs/promises";
import { join, resolve } from "node:path";
import { sleep } from "./poll";
import { ensurePrivateDir } from "./private-dir";

export interface HostLockOptions {
  signal?: AbortSignal;
  /** How often to retry while another process holds the file. */
  pollMs?: number;
  /** Called once when the caller has to wait, with who holds the lock. */
  onWait?: (holder: string) => void;
  /** Written into the lock file for people debugging a stuck host. */
  purpose?: string;
}

interface LockFileBody {
  pid: number;
  token: string;
  since: string;
  purpose?: string;
}

const queues = new Map<string, Promise<void>>();

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    // EPERM: the process exists but belongs to someone else.
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

async function waitFor(p: Promise<void>, signal?: AbortSignal): Promise<void> {
  if (!signal) return p;
  signal.throwIfAborted();
  let onAbort!: () => void;
  const aborted = new Promise<never>((_, reject) => {
    onAbort = () => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
  });
  try {
    await Promise.race([p, aborted]);
  } finally {
    signal.removeEventListener("abort", onAbort);
  }
}

/** The lock file is left unreadable only in the instant between create and write; allow for that. */
const UNREADABLE_GRACE_MS = 30_000;

async function acquireFile(path: string, body: LockFileBody, options: HostLockOptions): Promise<void> {
  let told = false;
  for (;;) {
    options.signal?.throwIfAborted();
    try {
      const fh = await open(path, "wx", 0o600);
      try {
        await fh.writeFile(JSON.stringify(body));
      } finally {
        await fh.close();
      }
      return;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
    }
    let holder: LockFileBody | undefined;
    try {
      holder = JSON.parse(await readFile(path, "utf8")) as LockFileBody;
    } catch {
      holder = undefined;
    }
    let stale: boolean;
    if (holder && typeof holder.pid === "number") stale = !isAlive(holder.pid);
    else {
      const st = await stat(path).catch(() => undefined);
      stale = st !== undefined && Date.now() - st.mtimeMs > UNREADABLE_GRACE_MS;
    }
    if (stale) {
      await unlink(path).catch(() => {});
      continue;
    }
    if (!told) {
      told = true;
      options.onWait?.(holder ? `pid ${holder.pid}${holder.purpose ? ` (${holder.purpose})` : ""}` : "another process");
    }
    await sleep(options.pollMs ?? 200, options.signal);
  }
}

async function releaseFile(path: string, token: string): Promise<void> {
  try {
    const holder = JSON.parse(await readFile(path, "utf8")) as LockFileBody;
    // Only remove our own file: a stale-lock takeover by someone else must not be undone.
    if (holder.token === token) await unlink(path);
  } catch {
    // Already gone: nothing to release.
  }
}

/** Runs `fn` while holding the lock `name` in `lockDir`. Waiting is abortable; `fn` is not interrupted. */
export async function withHostLock<T>(lockDir: string, name: string, fn: () => Promise<T>, options: HostLockOptions = {}): Promise<T> {
  const path = join(resolve(lockDir), `${name}.lock`);

  // Join the in-process queue before the first await, so callers are served in call order.
  const queued = queues.get(path);
  const before = queued ?? Promise.resolve();
  let releaseQueue!: () => void;
  const mine = new Promise<void>((r) => (releaseQueue = r));
  const tail = before.then(() => mine);
  queues.set(path, tail);
  void tail.then(() => {
    if (queues.get(path) === tail) queues.delete(path);
  });

  const token = randomUUID();
  try {
    if (queued) options.onWait?.("another caller in this process");
    await waitFor(before, options.signal);
    // Lock files sit beside state root writes (IP allocations): nobody else may write here.
    await ensurePrivateDir(lockDir);
    await acquireFile(path, { pid: process.pid, token, since: new Date().toISOString(), purpose: options.purpose }, options);
  } catch (e) {
    releaseQueue();
    throw e;
  }
  try {
    return await fn();
  } finally {
    await releaseFile(path, token);
    releaseQueue();
  }
}
