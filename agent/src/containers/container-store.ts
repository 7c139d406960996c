/**
 * The containers this agent knows: one directory each under `root/containers/<id>/`
 * (config.json, the shim's state dir, the overlay upper/work, the json-file log, etc files),
 * mirrored in memory, with Docker's lookup rules (full ID, then name, then unique ID prefix).
 */
import { randomBytes } from "node:crypto";
import * as fs from "node:fs/promises";
import { join } from "node:path";
import { ConflictError, InvalidError, NotFoundError } from "@flotilla/core";
import type { ContainerRecord } from "./container-types";

/** 404 "No such container: x" in Docker's words. */
export class ContainerNotFoundError extends NotFoundError {
  constructor(ref: string) {
    super("container", ref);
    this.message = `No such container: ${ref}`;
  }
}

/** Paths of one container's files. */
export interface ContainerPaths {
  dir: string;
  config: string;
  stateDir: string;
  upper: string;
  work: string;
  log: string;
  etc: string;
}

const ADJECTIVES = [
  "brave",
  "calm",
  "eager",
  "fervent",
  "gallant",
  "happy",
  "jolly",
  "keen",
  "lucid",
  "merry",
  "nifty",
  "quirky",
  "serene",
  "sharp",
  "tender",
  "vivid",
  "witty",
  "zen",
];
const NOUNS = [
  "albatross",
  "barge",
  "clipper",
  "dinghy",
  "ferry",
  "frigate",
  "galleon",
  "junk",
  "ketch",
  "lugger",
  "schooner",
  "sloop",
  "tanker",
  "trawler",
  "tug",
  "yawl",
  "yacht",
  "pinnace",
];

export class ContainerStore {
  private readonly byId = new Map<string, ContainerRecord>();
  private readonly byName = new Map<string, string>();
  /** One write at a time per container: two renames of the same temp file would race. */
  private readonly writes = new Map<string, Promise<void>>();
  readonly dir: string;

  constructor(root: string) {
    this.dir = join(root, "containers");
  }

  paths(id: string): ContainerPaths {
    const dir = join(this.dir, id);
    return {
      dir,
      config: join(dir, "config.json"),
      stateDir: join(dir, "shim"),
      upper: join(dir, "rootfs", "upper"),
      work: join(dir, "rootfs", "work"),
      log: join(dir, `${id}-json.log`),
      etc: join(dir, "etc"),
    };
  }

  /** Loads every container directory; a half-made one (no config.json) is removed. */
  async load(): Promise<ContainerRecord[]> {
    await fs.mkdir(this.dir, { recursive: true, mode: 0o700 });
    for (const id of await fs.readdir(this.dir)) {
      if (!/^[0-9a-f]{64}$/.test(id)) continue;
      try {
        const record = JSON.parse(await fs.readFile(this.paths(id).config, "utf8")) as ContainerRecord;
        this.byId.set(id, record);
        this.byName.set(record.name, id);
      } catch {
        await fs.rm(this.paths(id).dir, { recursive: true, force: true });
      }
    }
    return this.all();
  }

  all(): ContainerRecord[] {
    return [...this.byId.values()];
  }

  /** Docker's lookup: full ID, then name (with or without "/"), then a unique ID prefix. */
  find(ref: string): ContainerRecord | undefined {
    const exact = this.byId.get(ref);
    if (exact) return exact;
    const byName = this.byName.get(ref.startsWith("/") ? ref : `/${ref}`);
    if (byName) return this.byId.get(byName);
    if (!/^[0-9a-f]+$/.test(ref)) return undefined;
    const matches = [...this.byId.keys()].filter((id) => id.startsWith(ref));
    if (matches.length > 1) throw new InvalidError(`multiple IDs found with provided prefix: ${ref}`, { container: ref });
    return matches.length ? this.byId.get(matches[0]!) : undefined;
  }

  get(ref: string): ContainerRecord {
    const c = this.find(ref);
    if (!c) throw new ContainerNotFoundError(ref);
    return c;
  }

  /** A fresh 64-hex ID that is not a prefix clash with a name. */
  newId(): string {
    for (;;) {
      const id = randomBytes(32).toString("hex");
      if (!this.byId.has(id) && !/^\d+$/.test(id.slice(0, 12))) return id;
    }
  }

  /** A random free name, Docker style (`brave_schooner`). */
  newName(): string {
    for (let i = 0; ; i++) {
      const a = ADJECTIVES[Math.floor(Math.random() * ADJECTIVES.length)]!;
      const n = NOUNS[Math.floor(Math.random() * NOUNS.length)]!;
      const name = `/${a}_${n}${i > 10 ? Math.floor(Math.random() * 100) : ""}`;
      if (!this.byName.has(name)) return name;
    }
  }

  /** Reserves the name for `id` (409 with Docker's message when taken). */
  claimName(name: string, id: string): void {
    const owner = this.byName.get(name);
    if (owner && owner !== id) {
      throw new ConflictError(
        `Conflict. The container name "${name}" is already in use by container "${owner}". You have to remove (or rename) that container to be able to reuse that name.`,
        { name },
      );
    }
    this.byName.set(name, id);
  }

  releaseName(name: string, id: string): void {
    if (this.byName.get(name) === id) this.byName.delete(name);
  }

  /** Adds or updates a record and writes its config.json atomically. */
  async save(record: ContainerRecord): Promise<void> {
    this.byId.set(record.id, record);
    this.byName.set(record.name, record.id);
    const file = this.paths(record.id).config;
    const tmp = `${file}.tmp`;
    const write = async () => {
      // Serialized when written, so the file holds the latest state, not the one when queued.
      if (this.byId.get(record.id) !== record) return; // deleted meanwhile
      await fs.writeFile(tmp, JSON.stringify(record));
      await fs.rename(tmp, file);
    };
    const next = (this.writes.get(record.id) ?? Promise.resolve()).then(write, write);
    this.writes.set(record.id, next);
    try {
      await next;
    } finally {
      if (this.writes.get(record.id) === next) this.writes.delete(record.id);
    }
  }

  /** Forgets the container and deletes its directory. */
  async delete(record: ContainerRecord): Promise<void> {
    this.byId.delete(record.id);
    this.releaseName(record.name, record.id);
    await this.writes.get(record.id)?.catch(() => {});
    await fs.rm(this.paths(record.id).dir, { recursive: true, force: true });
  }

  /** IDs of the containers that mount the volume (for DELETE /volumes/{name}). */
  volumeUsers(name: string): string[] {
    return this.all()
      .filter((c) => c.mounts.some((m) => m.type === "volume" && m.name === name))
      .map((c) => c.id);
  }

  /** Whether any container uses the image (its removal then needs force). */
  usesImage(imageId: string): boolean {
    return this.all().some((c) => c.imageId === imageId);
  }
}
