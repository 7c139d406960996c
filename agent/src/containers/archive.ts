/**
 * docker cp into and out of a container (GET/HEAD/PUT /containers/{id}/archive) and docker
 * export, safe against symlinks that point out of its rootfs: every path is resolved one
 * component at a time from a descriptor of the container's root (`/proc/PID/root` of a running
 * one, a mount of a stopped one, see rootfs-mount.ts), through descriptors held
 * open (`/proc/self/fd/N/name`, O_NOFOLLOW), and a symlink is followed by hand inside the root —
 * so neither a planted link nor one swapped in meanwhile reaches the host. Copying out runs the
 * host's tar in the resolved directory's descriptor; copying in stages the archive with tar in a
 * fresh host directory, then writes each entry through held descriptors.
 */
import { spawn } from "node:child_process";
import * as fs from "node:fs";
import { join, posix } from "node:path";
import type { Readable, Writable } from "node:stream";
import { InvalidError, NotFoundError } from "@flotilla/core";
import { HttpError } from "../engine-errors";

const MAX_LINKS = 40;
const { O_RDONLY, O_DIRECTORY, O_NOFOLLOW } = fs.constants;

function at(dirFd: number, name: string): string {
  return `/proc/self/fd/${dirFd}/${name}`;
}

function notFound(path: string): NotFoundError {
  const e = new NotFoundError("path", path);
  e.message = `Could not find the file ${path} in container`;
  return e;
}

/** A path resolved inside the root: the parent directory held open and the last name. */
export interface Resolved {
  parentFd: number;
  name: string;
  close(): void;
}

/**
 * Resolves `path` inside the root whose descriptor is `rootFd`. Symlinks in the middle are
 * followed within the root; the last component is followed only when `followLast`.
 */
export function resolveInRoot(rootFd: number, path: string, followLast: boolean): Resolved {
  const held: number[] = [];
  const open = (fd: number, name: string) => fs.openSync(at(fd, name), O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
  let stack = [fs.openSync(at(rootFd, "."), O_RDONLY | O_DIRECTORY)];
  held.push(stack[0]!);
  const close = () => held.forEach((fd) => fs.closeSync(fd));
  let todo = path.split("/").filter((c) => c && c !== ".");
  let hops = 0;
  try {
    for (;;) {
      if (!todo.length) return { parentFd: stack[stack.length - 1]!, name: ".", close };
      const comp = todo.shift()!;
      const cur = stack[stack.length - 1]!;
      if (comp === "..") {
        if (stack.length > 1) stack = stack.slice(0, -1);
        continue;
      }
      const last = todo.length === 0;
      let st: fs.Stats;
      try {
        st = fs.lstatSync(at(cur, comp));
      } catch {
        throw notFound(path);
      }
      if (st.isSymbolicLink() && (!last || followLast)) {
        if (++hops > MAX_LINKS) throw new InvalidError(`too many levels of symbolic links: ${path}`);
        const target = fs.readlinkSync(at(cur, comp));
        if (target.startsWith("/")) stack = [stack[0]!];
        todo = [...target.split("/").filter((c) => c && c !== "."), ...todo];
        continue;
      }
      if (last) return { parentFd: cur, name: comp, close };
      if (!st.isDirectory()) throw new InvalidError(`not a directory: ${path}`);
      let fd: number;
      try {
        fd = open(cur, comp);
      } catch {
        throw notFound(path); // swapped for something else meanwhile
      }
      held.push(fd);
      stack.push(fd);
    }
  } catch (err) {
    close();
    throw err;
  }
}

/** Go's os.FileMode bits the docker CLI reads from the stat header. */
function goMode(st: fs.Stats): number {
  let m = st.mode & 0o777;
  if (st.isDirectory()) m |= 2 ** 31;
  if (st.isSymbolicLink()) m |= 2 ** 27;
  if (st.isFIFO()) m |= 2 ** 25;
  if (st.isSocket()) m |= 2 ** 24;
  if (st.mode & 0o4000) m |= 2 ** 23;
  if (st.mode & 0o2000) m |= 2 ** 22;
  if (st.mode & 0o1000) m |= 2 ** 20;
  return m >>> 0;
}

/** The X-Docker-Container-Path-Stat header value of a resolved path. */
export function pathStat(r: Resolved, path: string): string {
  const full = at(r.parentFd, r.name);
  const st = fs.lstatSync(full);
  const stat = {
    name: r.name === "." ? posix.basename(path) || "/" : r.name,
    size: st.size,
    mode: goMode(st),
    mtime: st.mtime.toISOString(),
    linkTarget: st.isSymbolicLink() ? fs.readlinkSync(full) : "",
  };
  return Buffer.from(JSON.stringify(stat)).toString("base64");
}

/** Streams a tar of the resolved path (named by its last component) to `out`. */
export function tarOut(r: Resolved, out: Writable): Promise<void> {
  return new Promise((resolve, reject) => {
    // The child gets the held parent as fd 3: `-C /proc/self/fd/3` is that very directory.
    const member = r.name === "." ? "." : r.name;
    const child = spawn("tar", ["-C", "/proc/self/fd/3", "--numeric-owner", "-cf", "-", "--", member], {
      stdio: ["ignore", "pipe", "pipe", r.parentFd],
    });
    let stderr = "";
    child.stderr!.on("data", (b: Buffer) => (stderr += b.toString()));
    child.stdout!.pipe(out, { end: false });
    child.on("error", reject);
    child.on("close", (code) => (code === 0 ? resolve() : reject(new HttpError(500, `tar: ${stderr.trim()}`))));
  });
}

/**
 * Streams a tar of everything in the directory `dirFd` (docker export: member names without a
 * leading "./", as dockerd writes them) to `out`.
 */
export function tarTree(dirFd: number, out: Writable): Promise<void> {
  const names = fs.readdirSync(at(dirFd, ".")).sort();
  return new Promise((resolve, reject) => {
    const members = names.length ? ["--", ...names] : ["--files-from", "/dev/null"];
    const child = spawn("tar", ["-C", "/proc/self/fd/3", "--numeric-owner", "-cf", "-", ...members], {
      stdio: ["ignore", "pipe", "pipe", dirFd],
    });
    let stderr = "";
    child.stderr!.on("data", (b: Buffer) => (stderr += b.toString()));
    child.stdout!.pipe(out, { end: false });
    child.on("error", reject);
    child.on("close", (code) => (code === 0 ? resolve() : reject(new HttpError(500, `tar: ${stderr.trim()}`))));
  });
}

/**
 * Extracts the tar `input` into the directory `dest` (resolved, following links, in the root):
 * staged in `stageDir` on the host, then copied entry by entry through held descriptors.
 * Owned by root unless `keepOwner` (docker cp -a).
 */
export async function tarIn(rootFd: number, dest: string, input: Readable, stageDir: string, keepOwner: boolean): Promise<void> {
  const r = resolveInRoot(rootFd, dest, true);
  try {
    let destFd: number;
    try {
      destFd = fs.openSync(at(r.parentFd, r.name), O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
    } catch {
      throw new HttpError(400, `extraction point is not a directory: ${dest}`);
    }
    try {
      fs.mkdirSync(stageDir, { recursive: true, mode: 0o700 });
      await new Promise<void>((resolve, reject) => {
        const child = spawn(
          "tar",
          ["-C", stageDir, "-xf", "-", ...(keepOwner ? ["--same-owner", "--numeric-owner"] : ["--no-same-owner"])],
          { stdio: ["pipe", "ignore", "pipe"] },
        );
        let stderr = "";
        child.stderr.on("data", (b: Buffer) => (stderr += b.toString()));
        input.pipe(child.stdin);
        child.on("error", reject);
        child.on("close", (code) => (code === 0 ? resolve() : reject(new InvalidError(`invalid archive: ${stderr.trim()}`))));
      });
      copyTree(stageDir, destFd, keepOwner);
    } finally {
      fs.closeSync(destFd);
      fs.rmSync(stageDir, { recursive: true, force: true });
    }
  } finally {
    r.close();
  }
}

/** Copies the host tree `src` into the directory behind `dirFd`, never following a link there. */
function copyTree(src: string, dirFd: number, keepOwner: boolean): void {
  for (const e of fs.readdirSync(src, { withFileTypes: true })) {
    const from = join(src, e.name);
    const to = at(dirFd, e.name);
    const st = fs.lstatSync(from);
    const uid = keepOwner ? st.uid : 0;
    const gid = keepOwner ? st.gid : 0;
    const existing = fs.lstatSync(to, { throwIfNoEntry: false }) ?? null;
    if (e.isDirectory()) {
      if (existing && !existing.isDirectory()) fs.rmSync(to, { force: true });
      if (!existing || !existing.isDirectory()) fs.mkdirSync(to, { mode: st.mode & 0o7777 });
      const fd = fs.openSync(to, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
      try {
        fs.fchownSync(fd, uid, gid);
        fs.fchmodSync(fd, st.mode & 0o7777);
        copyTree(from, fd, keepOwner);
      } finally {
        fs.closeSync(fd);
      }
      continue;
    }
    if (existing?.isDirectory()) throw new InvalidError(`cannot overwrite directory ${e.name} with non-directory`);
    if (existing) fs.unlinkSync(to);
    if (e.isSymbolicLink()) {
      fs.symlinkSync(fs.readlinkSync(from), to);
      fs.lchownSync(to, uid, gid);
    } else if (e.isFile()) {
      const out = fs.openSync(to, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | O_NOFOLLOW, st.mode & 0o7777);
      try {
        const data = fs.openSync(from, O_RDONLY);
        try {
          const buf = Buffer.alloc(1 << 16);
          let n: number;
          while ((n = fs.readSync(data, buf, 0, buf.length, null)) > 0) fs.writeSync(out, buf, 0, n);
        } finally {
          fs.closeSync(data);
        }
        fs.fchownSync(out, uid, gid);
        fs.fchmodSync(out, st.mode & 0o7777);
      } finally {
        fs.closeSync(out);
      }
    }
    // devices, FIFOs and sockets are not copied into a container
  }
}

/** A container's root as a descriptor, from `/proc/PID/root` or a mount (the caller closes it). */
export function openRoot(path: string): number {
  return fs.openSync(path, O_RDONLY | O_DIRECTORY);
}
