// Unit tests of the agent's on-disk stores in temp directories: volumes, container records and
// lookup, user resolution from image layers, the /etc files given to containers.
import * as fs from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ConflictError, InvalidError, NotFoundError, NotSupportedError } from "@flotilla/core";
import { afterAll, describe, expect, it } from "vitest";
import { ContainerNotFoundError, ContainerStore } from "../src/containers/container-store";
import type { ContainerRecord } from "../src/containers/container-types";
import { resolveUser, writeEtcFiles } from "../src/containers/rootfs-files";
import { VolumeStore } from "../src/volumes/volume-store";

const dirs: string[] = [];
function tmp(): string {
  const d = fs.mkdtempSync(join(tmpdir(), "flotilla-agent-unit-"));
  dirs.push(d);
  return d;
}
afterAll(() => dirs.forEach((d) => fs.rmSync(d, { recursive: true, force: true })));

describe("VolumeStore", () => {
  it("creates (idempotently), lists, inspects and removes local volumes", async () => {
    const store = new VolumeStore(tmp());
    await store.init();
    const { volume, created } = await store.create({ Name: "data", Labels: { k: "v" } });
    expect(created).toBe(true);
    expect(volume).toMatchObject({ Name: "data", Driver: "local", Scope: "local", Labels: { k: "v" }, Options: {} });
    expect(volume.CreatedAt).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    expect(fs.statSync(volume.Mountpoint).isDirectory()).toBe(true);
    expect((await store.create({ Name: "data" })).created).toBe(false);
    const anon = (await store.create({})).volume;
    expect(anon.Name).toMatch(/^[0-9a-f]{64}$/);
    expect((await store.list()).map((v) => v.Name).sort()).toEqual([anon.Name, "data"].sort());
    expect(await store.inspect("data")).toEqual(volume);

    await expect(store.remove("data", ["c1"])).rejects.toThrow(ConflictError);
    await expect(store.remove("data", ["c1"])).rejects.toThrow("remove data: volume is in use - [c1]");
    expect(await store.remove("data", [])).toBe(true);
    expect(fs.existsSync(volume.Mountpoint)).toBe(false);
    await expect(store.inspect("data")).rejects.toThrow("get data: no such volume");
    await expect(store.remove("data", [])).rejects.toThrow(NotFoundError);
    expect(await store.remove("data", [], true)).toBe(false);
  });

  it("refuses bad names, other drivers and driver options", async () => {
    const store = new VolumeStore(tmp());
    await store.init();
    await expect(store.create({ Name: "a" })).rejects.toThrow(InvalidError);
    await expect(store.create({ Name: "../x" })).rejects.toThrow(/invalid characters/);
    await expect(store.create({ Name: "ok", Driver: "nfs" })).rejects.toThrow(NotSupportedError);
    await expect(store.create({ Name: "ok", DriverOpts: { type: "tmpfs" } })).rejects.toThrow(NotSupportedError);
    expect(await store.find("../../etc")).toBeUndefined();
  });
});

function rec(id: string, name: string): ContainerRecord {
  return { id, name, state: { status: "created" } } as unknown as ContainerRecord;
}

describe("ContainerStore", () => {
  it("finds by full id, name (with or without /), unique prefix", async () => {
    const root = tmp();
    const store = new ContainerStore(root);
    await store.load();
    const a = rec(`abc${"0".repeat(61)}`, "/web");
    const b = rec(`abd${"0".repeat(61)}`, "/db");
    for (const r of [a, b]) {
      fs.mkdirSync(store.paths(r.id).dir, { recursive: true });
      await store.save(r);
    }
    expect(store.get(a.id)).toBe(a);
    expect(store.get("web")).toBe(a);
    expect(store.get("/db")).toBe(b);
    expect(store.get("abc")).toBe(a);
    expect(() => store.get("ab")).toThrow(/multiple IDs found/);
    expect(() => store.get("nope")).toThrow(ContainerNotFoundError);
    expect(() => store.get("nope")).toThrow("No such container: nope");
    expect(() => store.claimName("/web", b.id)).toThrow(`Conflict. The container name "/web" is already in use by container "${a.id}".`);

    // persisted: a new store loads them; a directory without config.json is cleared away
    fs.mkdirSync(join(store.dir, "f".repeat(64)));
    const again = new ContainerStore(root);
    expect((await again.load()).map((r) => r.name).sort()).toEqual(["/db", "/web"]);
    expect(fs.existsSync(join(store.dir, "f".repeat(64)))).toBe(false);
    await again.delete(again.get("web"));
    expect(again.find("web")).toBeUndefined();
    expect(fs.existsSync(again.paths(a.id).dir)).toBe(false);
    expect(again.newId()).toMatch(/^[0-9a-f]{64}$/);
    expect(again.newName()).toMatch(/^\/[a-z]+_[a-z]+\d*$/);
  });
});

describe("rootfs files", () => {
  it("resolves users and groups from the topmost layer that has passwd/group", async () => {
    const upper = tmp();
    const lower = tmp();
    fs.mkdirSync(join(lower, "etc"));
    fs.writeFileSync(join(lower, "etc/passwd"), "root:x:0:0::/root:/bin/sh\nweb:x:1000:1001::/home/web:/bin/sh\n");
    fs.writeFileSync(join(lower, "etc/group"), "root:x:0:\nstaff:x:50:\n");
    const layers = [upper, lower];
    expect(await resolveUser("", layers)).toBe("");
    expect(await resolveUser("web", layers)).toBe("1000:1001");
    expect(await resolveUser("1000", layers)).toBe("1000:1001");
    expect(await resolveUser("4242", layers)).toBe("4242:4242");
    expect(await resolveUser("web:staff", layers)).toBe("1000:50");
    expect(await resolveUser("7:8", layers)).toBe("7:8");
    await expect(resolveUser("ghost", layers)).rejects.toThrow("unable to find user ghost: no matching entries in passwd file");
    await expect(resolveUser("web:nogroup", layers)).rejects.toThrow(/unable to find group nogroup/);
    // an upper layer's passwd wins; a symlink is never followed out of the image
    fs.mkdirSync(join(upper, "etc"));
    fs.writeFileSync(join(upper, "etc/passwd"), "web:x:2000:2000::/:/bin/sh\n");
    expect(await resolveUser("web", layers)).toBe("2000:2000");
    fs.rmSync(join(upper, "etc/passwd"));
    fs.symlinkSync("/etc/passwd", join(upper, "etc/passwd"));
    expect(await resolveUser("web", layers)).toBe("1000:1001");
  });

  it("writes hostname, hosts and resolv.conf", async () => {
    const dir = tmp();
    const files = await writeEtcFiles(dir, "boat", "198.18.0.5", true);
    expect(fs.readFileSync(files.hostname, "utf8")).toBe("boat\n");
    expect(fs.readFileSync(files.hosts, "utf8")).toContain("198.18.0.5\tboat");
    expect(fs.readFileSync(files.resolvConf, "utf8")).not.toMatch(/^nameserver 127\./m);
    const noIp = await writeEtcFiles(tmp(), "x", "", true);
    expect(fs.readFileSync(noIp.hosts, "utf8")).toContain("127.0.1.1\tx");
  });
});
