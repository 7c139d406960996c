/**
 * Named volumes with the `local` driver: a directory per volume under the agent root,
 * `volumes/<name>/_data` (what containers mount) and `volumes/<name>/volume.json` (metadata).
 * Answers POST /volumes/create, GET /volumes, GET /volumes/{name}, DELETE /volumes/{name}.
 */
import { randomBytes } from "node:crypto";
import * as fs from "node:fs/promises";
import { join } from "node:path";
import { ConflictError, InvalidError, NotFoundError, NotSupportedError } from "@flotilla/core";

/** GET /volumes/{name} in Docker's shape. */
export interface Volume {
  Name: string;
  Driver: "local";
  Mountpoint: string;
  CreatedAt: string;
  Labels: Record<string, string>;
  Scope: "local";
  Options: Record<string, string>;
}

export interface CreateVolumeRequest {
  Name?: string;
  Driver?: string;
  DriverOpts?: Record<string, string> | null;
  Labels?: Record<string, string> | null;
}

/** Docker's label for volumes made for a container's anonymous mount point (`-v /data`). */
export const ANONYMOUS_LABEL = "com.docker.volume.anonymous";

const NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]+$/;

/** Docker's rule for volume names; throws InvalidError with its wording. */
export function validateVolumeName(name: string): void {
  if (!NAME.test(name)) {
    throw new InvalidError(
      `create ${name}: "${name}" includes invalid characters for a local volume name, only "[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. If you intended to pass a host directory, use absolute path`,
      { field: "Name" },
    );
  }
}

export class VolumeStore {
  private readonly dir: string;

  constructor(root: string) {
    this.dir = join(root, "volumes");
  }

  async init(): Promise<void> {
    await fs.mkdir(this.dir, { recursive: true, mode: 0o700 });
  }

  /** The directory containers mount. */
  dataPath(name: string): string {
    return join(this.dir, name, "_data");
  }

  /** Creates a volume, or returns the existing one of that name (Docker is idempotent here). */
  async create(req: CreateVolumeRequest = {}): Promise<{ volume: Volume; created: boolean }> {
    const driver = req.Driver || "local";
    if (driver !== "local") throw new NotSupportedError(`volume driver ${driver} is not supported; only "local"`, { field: "Driver" });
    if (req.DriverOpts && Object.keys(req.DriverOpts).length) {
      throw new NotSupportedError("local volume options (type, device, o) are not supported", { field: "DriverOpts" });
    }
    const name = req.Name || randomBytes(32).toString("hex");
    validateVolumeName(name);
    const existing = await this.find(name);
    if (existing) return { volume: existing, created: false };
    const volume: Volume = {
      Name: name,
      Driver: "local",
      Mountpoint: this.dataPath(name),
      CreatedAt: new Date().toISOString().replace(/\.\d+Z$/, "Z"),
      Labels: { ...(req.Labels ?? {}) },
      Scope: "local",
      Options: {},
    };
    // The data dir exists before volume.json: a half-made volume is invisible, never half-usable.
    await fs.mkdir(volume.Mountpoint, { recursive: true, mode: 0o755 });
    const meta = join(this.dir, name, "volume.json");
    await fs.writeFile(`${meta}.tmp`, JSON.stringify(volume));
    await fs.rename(`${meta}.tmp`, meta);
    return { volume, created: true };
  }

  async find(name: string): Promise<Volume | undefined> {
    if (!NAME.test(name)) return undefined;
    try {
      return JSON.parse(await fs.readFile(join(this.dir, name, "volume.json"), "utf8")) as Volume;
    } catch {
      return undefined;
    }
  }

  /** GET /volumes/{name}; 404 "get x: no such volume". */
  async inspect(name: string): Promise<Volume> {
    const v = await this.find(name);
    if (!v) throw volumeNotFound(name);
    return v;
  }

  async list(): Promise<Volume[]> {
    let names: string[];
    try {
      names = await fs.readdir(this.dir);
    } catch {
      return [];
    }
    const out: Volume[] = [];
    for (const n of names) {
      const v = await this.find(n);
      if (v) out.push(v);
    }
    return out.sort((a, b) => a.Name.localeCompare(b.Name));
  }

  /**
   * DELETE /volumes/{name}. `inUseBy` lists containers referencing it (Docker refuses while any
   * container, running or not, does). `force` ignores a missing volume, not an in-use one.
   */
  async remove(name: string, inUseBy: readonly string[], force = false): Promise<boolean> {
    const v = await this.find(name);
    if (!v) {
      if (force) return false;
      throw volumeNotFound(name);
    }
    if (inUseBy.length) {
      throw new ConflictError(`remove ${name}: volume is in use - [${inUseBy.join(", ")}]`, { volume: name });
    }
    // volume.json goes first: a crash midway leaves an orphan directory, never a broken volume.
    await fs.rm(join(this.dir, name, "volume.json"), { force: true });
    await fs.rm(join(this.dir, name), { recursive: true, force: true });
    return true;
  }
}

function volumeNotFound(name: string): NotFoundError {
  const err = new NotFoundError("volume", name);
  err.message = `get ${name}: no such volume`;
  return err;
}
