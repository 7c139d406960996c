// The image store against a real registry (Debian's docker-registry on loopback) and real
// images built from busybox-static: pulls, sharing, verification, auth, TLS, removal.
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gunzipSync, gzipSync } from "node:zlib";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { ConflictError, NotFoundError, UnavailableError } from "@flotilla/core";
import {
  DigestMismatchError,
  ImageStore,
  LayerInvalidError,
  ManifestUnknownError,
  NoMatchingManifestError,
  PullAccessDeniedError,
  type ImageStoreOptions,
  type ProgressMessage,
} from "../src/images";
import { BUSYBOX_CONFIG, FIXTURE_TAGS, LAYERED_CONTENT, layoutImage } from "../../test/support/busybox-image";
import { selfSignedCert, startAuthProxy, startRegistry, type AuthProxy, type TestRegistry } from "../../test/support/registry";
import { readXattr } from "./images-fs-helpers";
import { pushLayer, sha256, tar } from "../../test/fuzz/hostile-layers";

const roots: string[] = [];
const proxies: AuthProxy[] = [];
let registry: TestRegistry;

async function openStore(options: Partial<ImageStoreOptions> = {}, root?: string): Promise<{ store: ImageStore; root: string }> {
  root ??= fs.mkdtempSync(join(tmpdir(), "flotilla-images-"));
  roots.push(root);
  const store = await ImageStore.open({ root, insecureRegistries: [registry.host], ...options });
  return { store, root };
}

const ls = (dir: string) => (fs.existsSync(dir) ? fs.readdirSync(dir).sort() : []);
const busybox = layoutImage(FIXTURE_TAGS.busybox);
const layered = layoutImage(FIXTURE_TAGS.layered);

beforeAll(async () => {
  registry = await startRegistry();
  await registry.pushBusybox("busybox:latest");
  await registry.pushBusybox("busybox:v1");
  await registry.push(FIXTURE_TAGS.layered, "layered:latest");
  await registry.push(FIXTURE_TAGS.multiArch, "multi:latest", { all: true });
  await registry.push(FIXTURE_TAGS.busybox, "schema2/busybox:latest", { format: "v2s2" });
});

afterEach(async () => {
  await Promise.all(proxies.splice(0).map((p) => p.stop()));
});

afterAll(async () => {
  await registry?.stop();
  for (const r of roots) fs.rmSync(r, { recursive: true, force: true });
});

describe("pull", () => {
  it("pulls busybox with Docker's progress messages; inspect, list and resolve show it", async () => {
    const { store } = await openStore();
    const messages: ProgressMessage[] = [];
    const ref = `${registry.host}/busybox:latest`;
    const result = await store.pull(ref, { onProgress: (m) => messages.push(m) });

    const layer = busybox.layers![0]!;
    const short = layer.digest.slice(7, 19);
    expect(result).toEqual({ id: busybox.configDigest, reference: ref, digest: busybox.manifestDigest, upToDate: false });
    expect(messages[0]).toEqual({ status: "Pulling from busybox", id: "latest" });
    const statuses = messages.filter((m) => m.id === short).map((m) => m.status);
    expect(statuses[0]).toBe("Pulling fs layer");
    expect(statuses).toContain("Downloading");
    expect(statuses.slice(-1)).toEqual(["Pull complete"]);
    expect(statuses.indexOf("Download complete")).toBeGreaterThan(statuses.indexOf("Downloading"));
    // Nothing is extracted during the pull: the files are written after it (see unpacker.ts).
    expect(statuses).not.toContain("Extracting");
    const download = messages.find((m) => m.status === "Downloading")!;
    expect(download.progressDetail).toEqual({ current: expect.any(Number), total: layer.size });
    expect(download.progress).toMatch(/^\[[= >]{50}\] +\S+\/1\.0\d+MB$/);
    expect(messages.slice(-2)).toEqual([
      { status: `Digest: ${busybox.manifestDigest}` },
      { status: `Status: Downloaded newer image for ${ref}` },
    ]);

    const inspect = await store.inspect(ref);
    expect(inspect).toMatchObject({
      Id: busybox.configDigest,
      RepoTags: [ref],
      RepoDigests: [`${registry.host}/busybox@${busybox.manifestDigest}`],
      Architecture: "amd64",
      Os: "linux",
      RootFS: { Type: "layers", Layers: [layer.diffId] },
      Config: { ...BUSYBOX_CONFIG, Entrypoint: null, User: "" },
    });
    expect(inspect.Size).toBeGreaterThan(1_000_000);

    const [summary] = await store.list();
    expect(summary).toMatchObject({ Id: busybox.configDigest, RepoTags: [ref], Size: inspect.Size, Labels: BUSYBOX_CONFIG.Labels });
    expect(summary!.Created).toBe(Math.floor(Date.parse(inspect.Created) / 1000));

    const resolved = await store.resolve(ref);
    expect(resolved.config).toMatchObject(BUSYBOX_CONFIG);
    expect(resolved.lowerDirs).toHaveLength(1);
    const sh = join(resolved.lowerDirs[0]!, "bin/busybox");
    expect(fs.statSync(sh).mode & 0o111).toBeTruthy();
    expect(execFileSync(sh, ["echo", "alive"]).toString()).toBe("alive\n");
    expect(fs.readlinkSync(join(resolved.lowerDirs[0]!, "bin/sh"))).toBe("busybox");
    expect(fs.statSync(join(resolved.lowerDirs[0]!, "tmp")).mode & 0o7777).toBe(0o1777);
  });

  it("pulls again as 'Already exists' / 'Image is up to date' without downloading", async () => {
    const { store } = await openStore();
    const ref = `${registry.host}/busybox:latest`;
    await store.pull(ref);
    const messages: ProgressMessage[] = [];
    const again = await store.pull(ref, { onProgress: (m) => messages.push(m) });
    expect(again.upToDate).toBe(true);
    expect(messages.map((m) => m.status)).toEqual([
      "Pulling from busybox",
      "Already exists",
      `Digest: ${busybox.manifestDigest}`,
      `Status: Image is up to date for ${ref}`,
    ]);
  });

  it("unpacks each layer once and shares it between tags and images", async () => {
    const { store, root } = await openStore();
    const [a, b] = await Promise.all([store.pull(`${registry.host}/busybox:latest`), store.pull(`${registry.host}/busybox:v1`)]);
    expect(a.id).toBe(b.id);
    const l = await store.pull(`${registry.host}/layered`);
    const base = (await store.resolve(a.id)).lowerDirs;
    const top = (await store.resolve(l.id)).lowerDirs;
    expect(ls(join(root, "layers/sha256"))).toEqual(layered.layers!.map((x) => x.diffId.slice(7)).sort());
    expect(top).toHaveLength(3);
    expect(top[2]).toBe(base[0]); // topmost first: the shared busybox layer is the bottom one
    expect((await store.inspect(a.id)).RepoTags.sort()).toEqual([`${registry.host}/busybox:latest`, `${registry.host}/busybox:v1`]);
    // Compressed layer blobs stay beside their unpacked directories (push and save need them).
    expect(ls(join(root, "blobs/sha256"))).toContain(busybox.layers![0]!.digest.slice(7));
    await store.settle();
    expect(ls(join(root, "tmp"))).toEqual([]);
  });

  it("applies whiteouts and opaque dirs so overlayfs shows what Docker would", async () => {
    const { store } = await openStore();
    const { id } = await store.pull(`${registry.host}/layered:latest`);
    const { lowerDirs } = await store.resolve(id);
    const [topLayer, dataLayer] = lowerDirs as [string, string, string];
    const wh = fs.lstatSync(join(topLayer, LAYERED_CONTENT.whiteout));
    expect(wh.isCharacterDevice() && wh.rdev === 0).toBe(true);
    expect(readXattr(join(topLayer, LAYERED_CONTENT.opaqueDir), "trusted.overlay.opaque")).toBe("y");
    const tool = fs.lstatSync(join(dataLayer, LAYERED_CONTENT.setuidFile));
    expect([tool.mode & 0o7777, tool.uid, tool.gid, tool.mtimeMs / 1000]).toEqual([
      0o4755,
      LAYERED_CONTENT.uid,
      LAYERED_CONTENT.gid,
      LAYERED_CONTENT.mtime,
    ]);
    expect(fs.lstatSync(join(dataLayer, LAYERED_CONTENT.hardlink)).ino).toBe(fs.lstatSync(join(dataLayer, "opt/data/a.txt")).ino);
    expect(fs.readlinkSync(join(dataLayer, LAYERED_CONTENT.symlink))).toBe("data");

    // The proof: mount the lowerdirs read-only and look at the merged tree.
    const mnt = fs.mkdtempSync(join(tmpdir(), "flotilla-merged-"));
    roots.push(mnt);
    try {
      execFileSync("mount", ["-t", "overlay", "overlay", "-o", `ro,lowerdir=${lowerDirs.join(":")}`, mnt], { stdio: "pipe" });
    } catch (e) {
      console.warn(`overlay mount not permitted here, merged view not checked: ${(e as Error).message}`);
      return;
    }
    try {
      expect(fs.existsSync(join(mnt, "etc/motd"))).toBe(false);
      expect(ls(join(mnt, "opt/data"))).toEqual(["c.txt"]);
      expect(fs.existsSync(join(mnt, "bin/busybox"))).toBe(true);
      expect(fs.readFileSync(join(mnt, "etc/passwd"), "utf8")).toMatch(/^root:/);
      expect(fs.lstatSync(join(mnt, "opt/tool")).mode & 0o7777).toBe(0o4755);
    } finally {
      execFileSync("umount", [mnt]);
    }
  });

  it("reads Docker schema 2 manifests too", async () => {
    const { store } = await openStore();
    const { id } = await store.pull(`${registry.host}/schema2/busybox`);
    const { lowerDirs } = await store.resolve(id);
    expect(fs.existsSync(join(lowerDirs[0]!, "bin/busybox"))).toBe(true);
  });

  it("picks the host's platform from an index and records the index digest", async () => {
    const { store } = await openStore();
    const multi = layoutImage(FIXTURE_TAGS.multiArch);
    const amd = await store.pull(`${registry.host}/multi`, { platform: { os: "linux", architecture: "amd64" } });
    expect(amd).toMatchObject({ id: busybox.configDigest, digest: multi.manifestDigest });
    expect((await store.inspect(amd.id)).RepoDigests).toContain(`${registry.host}/multi@${multi.manifestDigest}`);
    const arm = await store.pull(`${registry.host}/multi`, { platform: { os: "linux", architecture: "arm64" } });
    expect(arm.id).toBe(layoutImage(FIXTURE_TAGS.arm64).configDigest);
    expect((await store.inspect(arm.id)).Architecture).toBe("arm64");
    const err = await store.pull(`${registry.host}/multi`, { platform: { os: "linux", architecture: "s390x" } }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NoMatchingManifestError);
    expect(err).toBeInstanceOf(NotFoundError);
    expect((err as Error).message).toBe(`no matching manifest for linux/s390x in the manifest list entries: ${registry.host}/multi:latest`);
  });

  it("pulls by digest without creating a tag", async () => {
    const { store } = await openStore();
    const ref = `${registry.host}/busybox@${busybox.manifestDigest}`;
    const messages: ProgressMessage[] = [];
    const { id } = await store.pull(ref, { onProgress: (m) => messages.push(m) });
    expect(messages[0]).toEqual({ status: "Pulling from busybox", id: busybox.manifestDigest });
    expect(messages.at(-1)).toEqual({ status: `Status: Downloaded newer image for ${ref}` });
    expect(await store.inspect(ref)).toMatchObject({ Id: id, RepoTags: [], RepoDigests: [ref] });
  });

  it("reports an unknown image as NotFound with the registry's words", async () => {
    const { store } = await openStore();
    const err = await store.pull(`${registry.host}/nope`).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ManifestUnknownError);
    expect(err).toBeInstanceOf(NotFoundError);
    expect((err as Error).message).toBe(`manifest unknown: ${registry.host}/nope:latest`);
    await expect(store.inspect("nope")).rejects.toThrow(/^No such image: nope$/);
    await expect(store.resolve(`${registry.host}/nope`)).rejects.toBeInstanceOf(NotFoundError);
    await expect(store.remove("sha256:" + "0".repeat(64))).rejects.toBeInstanceOf(NotFoundError);
  });

  it("stops when cancelled", async () => {
    const { store, root } = await openStore();
    const controller = new AbortController();
    controller.abort();
    await expect(store.pull(`${registry.host}/busybox`, { signal: controller.signal })).rejects.toThrow(/abort/i);
    expect(await store.list()).toEqual([]);
    expect(ls(join(root, "layers/sha256"))).toEqual([]);
  });

  it("leaves nothing half-written when cancelled mid-download", async () => {
    const { store, root } = await openStore();
    const controller = new AbortController();
    const pulling = store.pull(`${registry.host}/layered`, {
      signal: controller.signal,
      onProgress: (m) => {
        if (m.status === "Downloading") controller.abort();
      },
    });
    await expect(pulling).rejects.toThrow(/abort/i);
    await store.settle();
    expect(await store.list()).toEqual([]);
    expect(ls(join(root, "tmp"))).toEqual([]);
    expect(ls(join(root, "layers/sha256"))).toEqual([]);
    // Whatever blob landed is whole: its name is its digest.
    for (const hex of ls(join(root, "blobs/sha256")))
      expect(sha256(fs.readFileSync(join(root, "blobs/sha256", hex)))).toBe(`sha256:${hex}`);
    const { id } = await store.pull(`${registry.host}/layered`); // and a retry completes
    expect((await store.resolve(id)).lowerDirs).toHaveLength(3);
  });

  it("records nothing when cancelled after the last layer's download, before the pull ends", async () => {
    const { store, root } = await openStore();
    const controller = new AbortController();
    let complete = 0;
    const pulling = store.pull(`${registry.host}/layered`, {
      signal: controller.signal,
      onProgress: (m) => {
        if (m.status === "Pull complete" && ++complete === layered.layers!.length) controller.abort();
      },
    });
    await expect(pulling).rejects.toThrow(/abort/i);
    await store.settle();
    expect(await store.list()).toEqual([]);
    expect(ls(join(root, "layers/sha256"))).toEqual([]);
  });

  it("keeps its images across a reopen", async () => {
    const { store, root } = await openStore();
    const { id } = await store.pull(`${registry.host}/busybox`);
    await store.settle(); // one store per root: the first one is done before the second opens
    const { store: again } = await openStore({}, root);
    expect((await again.list()).map((i) => i.Id)).toEqual([id]);
    expect((await again.resolve(`${registry.host}/busybox`)).lowerDirs).toHaveLength(1);
  });

  it("returns before unpacking; sizes are right at once, and create finds the files", async () => {
    const { store, root } = await openStore();
    const { id } = await store.pull(`${registry.host}/layered`);
    // Right after the pull: what list and inspect say waits only for the content checks.
    const size = (await store.inspect(id)).Size;
    expect((await store.list()).map((i) => i.Size)).toEqual([size]);
    const { lowerDirs } = await store.resolve(id);
    expect(fs.existsSync(join(lowerDirs[0]!, "opt"))).toBe(true);
    await store.settle();
    expect(ls(join(root, "tmp"))).toEqual([]);
    // The size the scan gave is what the extractor counted: unpack the layers again to compare.
    const byDiff = JSON.parse(fs.readFileSync(join(root, "images.json"), "utf8")) as {
      layers: Record<string, { size: number; digests: string[]; unchecked?: string[] }>;
    };
    expect(Object.values(byDiff.layers).every((l) => l.unchecked === undefined && l.digests.length === 1)).toBe(true);
    expect(size).toBe(Object.values(byDiff.layers).reduce((n, l) => n + l.size, 0));
    expect(size).toBeGreaterThan(1_000_000);
  });

  it("checks and unpacks after a restart what a stopped agent left unchecked", async () => {
    const { store, root } = await openStore();
    const { id } = await store.pull(`${registry.host}/layered`);
    const size = (await store.inspect(id)).Size;
    await store.settle();
    // As if the agent had stopped right after the pull: layers unchecked, none unpacked.
    const indexFile = join(root, "images.json");
    const state = JSON.parse(fs.readFileSync(indexFile, "utf8")) as {
      images: Record<string, { size: number }>;
      layers: Record<string, { size: number; digests: string[]; unchecked?: string[] }>;
    };
    for (const l of Object.values(state.layers)) Object.assign(l, { size: 0, unchecked: l.digests, digests: [] });
    for (const i of Object.values(state.images)) i.size = 0;
    fs.writeFileSync(indexFile, JSON.stringify(state));
    fs.rmSync(join(root, "layers"), { recursive: true });
    const { store: again } = await openStore({}, root);
    expect((await again.inspect(id)).Size).toBe(size);
    const { lowerDirs } = await again.resolve(id);
    expect(lowerDirs.every((d) => fs.existsSync(d))).toBe(true);
    await again.settle();
    expect(ls(join(root, "tmp"))).toEqual([]);
  });
});

describe("verification", () => {
  let own: TestRegistry;
  beforeAll(async () => {
    // A registry of its own: blobs are shared across repositories, corrupting one here is local.
    own = await startRegistry();
    await own.pushBusybox("busybox:latest");
    await own.push(FIXTURE_TAGS.layered, "layered:latest");
  });
  afterAll(async () => {
    await own?.stop();
  });

  it("detects a corrupted layer blob: digest mismatch, nothing stored", async () => {
    const top = layered.layers![2]!;
    const file = own.blobFile(top.digest);
    const data = fs.readFileSync(file);
    data[Math.floor(data.length / 2)] ^= 0xff; // same size, different bytes
    fs.writeFileSync(file, data);
    const { store, root } = await openStore({ insecureRegistries: [own.host] });
    const err = await store.pull(`${own.host}/layered`).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DigestMismatchError);
    expect((err as Error).message).toMatch(
      new RegExp(`^digest mismatch for blob ${top.digest} of ${own.host}/layered: expected ${top.digest}, got sha256:[0-9a-f]{64}$`),
    );
    expect(await store.list()).toEqual([]);
    expect(ls(join(root, "layers/sha256"))).not.toContain(top.diffId.slice(7));
    expect(ls(join(root, "blobs/sha256"))).not.toContain(top.digest.slice(7));
    expect(ls(join(root, "tmp"))).toEqual([]);
  });

  it("stores a layer whose content is not the config's diffID, then refuses to unpack it and drops it", async () => {
    const layer = gzipSync(tar([{ name: "f", type: "file", body: Buffer.from("content\n") }]));
    const claimed = sha256(Buffer.from("another layer"));
    await pushLayer(own.url, "wrongdiff", "latest", layer, claimed);
    const { store, root } = await openStore({ insecureRegistries: [own.host] });
    // Like `skopeo copy`, the pull checks the blob's own digest; the content is checked after it.
    const { id } = await store.pull(`${own.host}/wrongdiff`);
    const message = new RegExp(
      `^digest mismatch for uncompressed layer ${sha256(layer)}: expected ${claimed}, got ${sha256(gunzipSync(layer))}$`,
    );
    const err = await store.resolve(id).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DigestMismatchError);
    expect((err as Error).message).toMatch(message);
    await store.settle();
    await expect(store.resolve(id)).rejects.toThrow(message); // said again, not "not found"
    expect(ls(join(root, "layers/sha256"))).toEqual([]);
    expect(ls(join(root, "blobs/sha256"))).not.toContain(sha256(layer).slice(7));
    expect(ls(join(root, "tmp"))).toEqual([]);
    expect(await store.remove(id)).toContainEqual({ Deleted: id });
  });

  it("refuses a hostile layer when unpacking it, writing nothing outside the store", async () => {
    const outside = fs.mkdtempSync(join(tmpdir(), "flotilla-outside-"));
    roots.push(outside);
    const layer = gzipSync(tar([{ name: `../../../../../../..${outside}/planted`, type: "file", body: Buffer.from("x") }]));
    await pushLayer(own.url, "escape", "latest", layer);
    const { store, root } = await openStore({ insecureRegistries: [own.host] });
    const { id } = await store.pull(`${own.host}/escape`);
    const err = await store.resolve(id).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(LayerInvalidError);
    expect((err as Error).message).toMatch(/path escapes the layer root/);
    await store.settle();
    expect(ls(outside)).toEqual([]);
    expect(ls(join(root, "layers/sha256"))).toEqual([]);
    expect(ls(join(root, "tmp"))).toEqual([]);
  });

  it("detects a corrupted config blob", async () => {
    const file = own.blobFile(busybox.configDigest!);
    const data = fs.readFileSync(file);
    fs.writeFileSync(file, Buffer.from(data.toString().replace('"sh"', '"rm"')));
    const { store } = await openStore({ insecureRegistries: [own.host] });
    await expect(store.pull(`${own.host}/busybox`)).rejects.toThrow(`digest mismatch for blob ${busybox.configDigest}`);
  });
});

describe("registry access", () => {
  async function proxy(options: Parameters<typeof startAuthProxy>[1]) {
    const p = await startAuthProxy(registry, options);
    proxies.push(p);
    return p;
  }

  it("refuses plain HTTP unless the registry is listed as insecure", async () => {
    const p = await proxy({});
    const { store } = await openStore({ insecureRegistries: [] });
    const err = await store.pull(`${p.host}/busybox`).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UnavailableError);
    expect((err as Error).message).toMatch(new RegExp(`^registry ${p.host}: https to ${p.host} failed .*list it in insecureRegistries$`));
    expect(p.requests).toEqual([]); // not one plain-HTTP request went out
  });

  it("speaks https to a registry with a private CA, and refuses it without the CA", async () => {
    const tls = await selfSignedCert();
    const p = await proxy({ tls });
    const { store } = await openStore({ insecureRegistries: [], ca: tls.cert });
    const { id } = await store.pull(`${p.host}/busybox`);
    expect(id).toBe(busybox.configDigest);
    const { store: untrusting } = await openStore({ insecureRegistries: [] });
    await expect(untrusting.pull(`${p.host}/busybox`)).rejects.toThrow(/TLS certificate of 127\.0\.0\.1:\d+ not trusted/);
  });

  it("follows the Bearer challenge: token with the repository scope, then retries", async () => {
    const p = await proxy({ redirectBlobs: true });
    const { store } = await openStore({ insecureRegistries: [p.host] });
    const { id } = await store.pull(`${p.host}/busybox`);
    expect(id).toBe(busybox.configDigest);
    const [ping, token, ...rest] = p.requests;
    expect(ping).toMatchObject({ server: "registry", path: "/v2/", status: 401 });
    expect(token).toMatchObject({ server: "token", status: 200 });
    expect(new URL(token!.path, "http://x").searchParams.get("scope")).toBe("repository:busybox:pull");
    expect(new URL(token!.path, "http://x").searchParams.get("service")).toBe("flotilla-test");
    const registryCalls = rest.filter((r) => r.server === "registry");
    expect(registryCalls.length).toBeGreaterThan(0);
    expect(registryCalls.every((r) => r.status !== 401 && r.authorization?.startsWith("Bearer "))).toBe(true);
    // Blobs came through the redirect, and the registry's credentials did not follow it.
    const storage = rest.filter((r) => r.server === "storage");
    expect(storage.length).toBe(2); // config + layer
    expect(storage.every((r) => r.authorization === undefined && r.status === 200)).toBe(true);
  });

  it("sends credentials to the token service; wrong ones mean 'pull access denied'", async () => {
    const p = await proxy({ username: "ci", password: "s3cret" });
    const { store } = await openStore({ insecureRegistries: [p.host] });
    const anonymous = await store.pull(`${p.host}/busybox`).catch((e: unknown) => e);
    expect(anonymous).toBeInstanceOf(PullAccessDeniedError);
    expect(anonymous).toBeInstanceOf(NotFoundError);
    expect((anonymous as Error).message).toMatch(
      new RegExp(`^pull access denied for ${p.host}/busybox, repository does not exist or may require 'docker login'`),
    );
    await expect(store.pull(`${p.host}/busybox`, { credentials: { username: "ci", password: "wrong" } })).rejects.toBeInstanceOf(
      PullAccessDeniedError,
    );
    await expect(store.pull(`${p.host}/busybox`, { credentials: { username: "ci", password: "s3cret" } })).resolves.toMatchObject({
      id: busybox.configDigest,
    });
    const { store: configured } = await openStore({
      insecureRegistries: [p.host],
      credentials: (d) => (d === p.host ? { username: "ci", password: "s3cret" } : undefined),
    });
    await expect(configured.pull(`${p.host}/busybox`)).resolves.toMatchObject({ id: busybox.configDigest });
  });

  it("answers a Basic challenge with the configured credentials", async () => {
    const p = await proxy({ scheme: "basic", username: "ci", password: "s3cret" });
    const { store } = await openStore({ insecureRegistries: [p.host] });
    await expect(store.pull(`${p.host}/busybox`)).rejects.toThrow(/pull access denied .*authentication required/);
    await expect(store.pull(`${p.host}/busybox`, { credentials: { username: "ci", password: "s3cret" } })).resolves.toMatchObject({
      id: busybox.configDigest,
    });
  });
});

describe("remove", () => {
  it("untags one of two tags, deletes with the last, and keeps layers another image uses", async () => {
    const { store, root } = await openStore();
    const latest = `${registry.host}/busybox:latest`;
    const v1 = `${registry.host}/busybox:v1`;
    const { id } = await store.pull(latest);
    await store.pull(v1);
    const top = await store.pull(`${registry.host}/layered`);

    expect(await store.remove(v1)).toEqual([{ Untagged: v1 }]);
    expect((await store.inspect(id)).RepoTags).toEqual([latest]);

    expect(await store.remove(latest)).toEqual([
      { Untagged: latest },
      { Untagged: `${registry.host}/busybox@${busybox.manifestDigest}` },
      { Deleted: id },
    ]);
    await expect(store.inspect(id)).rejects.toBeInstanceOf(NotFoundError);
    await store.settle(); // the unpacking after the pulls
    expect(ls(join(root, "layers/sha256"))).toHaveLength(3); // the base layer serves `layered` still

    const removed = await store.remove(top.id);
    expect(removed[0]).toEqual({ Untagged: `${registry.host}/layered:latest` });
    const deleted = removed.flatMap((r) => ("Deleted" in r ? [r.Deleted] : []));
    expect(deleted[0]).toBe(top.id);
    expect(deleted.slice(1).sort()).toEqual(layered.layers!.map((l) => l.diffId).sort());
    expect(ls(join(root, "layers/sha256"))).toEqual([]);
    expect(ls(join(root, "blobs/sha256"))).toEqual([]);
    expect(await store.list()).toEqual([]);
  });

  it("refuses to delete an image a container uses, unless forced: then it only untags", async () => {
    const { store } = await openStore({ isInUse: () => true });
    const ref = `${registry.host}/busybox:latest`;
    const { id } = await store.pull(ref);
    const short = id.slice(7, 19);
    const byName = await store.remove(ref).catch((e: unknown) => e);
    expect(byName).toBeInstanceOf(ConflictError);
    expect((byName as Error).message).toBe(
      `conflict: unable to remove repository reference "${ref}" (must force) - image ${short} is being used by a container`,
    );
    await expect(store.remove(id)).rejects.toThrow(
      `conflict: unable to delete ${short} (must be forced) - image is being used by a container`,
    );

    const forced = await store.remove(ref, { force: true });
    expect(forced).toEqual([{ Untagged: ref }, { Untagged: `${registry.host}/busybox@${busybox.manifestDigest}` }]);
    expect(await store.list()).toMatchObject([{ Id: id, RepoTags: [], RepoDigests: [] }]);
    expect((await store.resolve(id)).lowerDirs).toHaveLength(1); // its containers keep their rootfs

    expect(await store.remove(id, { isInUse: async () => false })).toEqual([{ Deleted: id }, { Deleted: busybox.layers![0]!.diffId }]);
  });

  it("stays consistent when pulls and removes of shared layers race", async () => {
    const { store, root } = await openStore();
    for (let round = 0; round < 5; round++) {
      await store.pull(`${registry.host}/busybox:latest`);
      const [, layeredPull, v1Pull] = await Promise.allSettled([
        store.remove(`${registry.host}/busybox:latest`),
        store.pull(`${registry.host}/layered`),
        store.pull(`${registry.host}/busybox:v1`),
      ]);
      expect([layeredPull.status, v1Pull.status]).toEqual(["fulfilled", "fulfilled"]);
      for (const image of await store.list()) {
        const { lowerDirs } = await store.resolve(image.Id); // throws if a layer went missing
        expect(lowerDirs.every((d) => fs.existsSync(join(d, "bin/busybox")) || fs.existsSync(join(d, "opt")))).toBe(true);
        await store.inspect(image.Id); // reads the config blob
      }
      for (const image of await store.list()) await store.remove(image.Id, { force: true });
      expect(ls(join(root, "layers/sha256"))).toEqual([]);
    }
  });

  it("by ID needs force when tags span several repositories", async () => {
    const { store } = await openStore();
    const { id } = await store.pull(`${registry.host}/busybox`);
    await store.tag(id, "other/name:1");
    expect((await store.inspect("other/name:1")).Id).toBe(id);
    await expect(store.remove(id)).rejects.toThrow(/referenced in multiple repositories/);
    const out = await store.remove(id.slice(7, 15), { force: true });
    expect(out).toContainEqual({ Untagged: "other/name:1" });
    expect(out).toContainEqual({ Deleted: id });
  });
});
