// Hostile image layers for the fuzzer: ustar archives written by hand (path traversal, absolute
// paths, symlink and hardlink escapes, device nodes, huge pax headers, gzip bombs), pushed to a
// real registry as one-layer images, so the agent's real pull path has to refuse or contain them.
import { createHash } from "node:crypto";
import { gunzipSync, gzipSync } from "node:zlib";

export interface Entry {
  name: string;
  type: "file" | "dir" | "symlink" | "hardlink" | "char" | "block" | "fifo" | "pax";
  body?: Buffer;
  linkname?: string;
}

const TYPEFLAG: Record<Entry["type"], string> = {
  file: "0",
  hardlink: "1",
  symlink: "2",
  char: "3",
  block: "4",
  dir: "5",
  fifo: "6",
  pax: "x",
};

function header(e: Entry): Buffer {
  const h = Buffer.alloc(512);
  const put = (s: string, off: number, len: number) => h.write(s.slice(0, len), off, len, "utf8");
  const octal = (n: number, off: number, len: number) => put(n.toString(8).padStart(len - 1, "0") + "\0", off, len);
  put(e.name, 0, 100);
  octal(e.type === "dir" ? 0o755 : 0o644, 100, 8);
  octal(0, 108, 8);
  octal(0, 116, 8);
  octal(e.body?.length ?? 0, 124, 12);
  octal(0, 136, 12);
  h.fill(" ", 148, 156);
  put(TYPEFLAG[e.type], 156, 1);
  put(e.linkname ?? "", 157, 100);
  put("ustar\0", 257, 6);
  put("00", 263, 2);
  let sum = 0;
  for (const b of h) sum += b;
  put(sum.toString(8).padStart(6, "0") + "\0 ", 148, 8);
  return h;
}

export function tar(entries: readonly Entry[]): Buffer {
  const parts: Buffer[] = [];
  for (const e of entries) {
    parts.push(header(e));
    if (e.body?.length) parts.push(e.body, Buffer.alloc((512 - (e.body.length % 512)) % 512));
  }
  parts.push(Buffer.alloc(1024));
  return Buffer.concat(parts);
}

const pax = (records: Record<string, string>) =>
  Buffer.from(
    Object.entries(records)
      .map(([k, v]) => {
        const body = ` ${k}=${v}\n`;
        let len = body.length + 1;
        while (String(len).length + body.length !== len) len = String(len).length + body.length;
        return `${len}${body}`;
      })
      .join(""),
  );

/** One hostile archive per kind; `target` is an absolute path outside the image the pull must never touch. */
export function hostileArchives(target: string, seed: number): { kind: string; layer: Buffer }[] {
  const rel = `../../../../../../../../${target.replace(/^\//, "")}`;
  const x = Buffer.from(`owned ${seed}\n`);
  return [
    { kind: "dot-dot path", layer: gzipSync(tar([{ name: rel, type: "file", body: x }])) },
    { kind: "absolute path", layer: gzipSync(tar([{ name: target, type: "file", body: x }])) },
    {
      kind: "symlink then write through it",
      layer: gzipSync(
        tar([
          { name: "esc", type: "symlink", linkname: target.slice(0, target.lastIndexOf("/")) },
          { name: `esc/${target.slice(target.lastIndexOf("/") + 1)}`, type: "file", body: x },
        ]),
      ),
    },
    {
      kind: "absolute symlink dir",
      layer: gzipSync(
        tar([
          { name: "d", type: "symlink", linkname: "/" },
          { name: `d${target}`, type: "file", body: x },
        ]),
      ),
    },
    { kind: "hardlink to a host file", layer: gzipSync(tar([{ name: "h", type: "hardlink", linkname: target }])) },
    { kind: "hardlink dot-dot", layer: gzipSync(tar([{ name: "h", type: "hardlink", linkname: rel }])) },
    {
      kind: "device nodes",
      layer: gzipSync(
        tar([
          { name: "dev/sda", type: "block" },
          { name: "dev/mem", type: "char" },
          { name: "f", type: "fifo" },
        ]),
      ),
    },
    {
      kind: "pax path escape",
      layer: gzipSync(
        tar([
          { name: "PaxHeader", type: "pax", body: pax({ path: rel }) },
          { name: "innocent", type: "file", body: x },
        ]),
      ),
    },
    {
      kind: "huge pax header",
      layer: gzipSync(
        tar([
          { name: "PaxHeader", type: "pax", body: pax({ comment: "A".repeat(8 * 1024 * 1024) }) },
          { name: "f", type: "file", body: x },
        ]),
      ),
    },
    { kind: "gzip bomb", layer: gzipSync(tar([{ name: "zeros", type: "file", body: Buffer.alloc(64 * 1024 * 1024) }]), { level: 9 }) },
    { kind: "truncated archive", layer: gzipSync(tar([{ name: "f", type: "file", body: Buffer.alloc(4096, 1) }]).subarray(0, 700)) },
    { kind: "not gzip", layer: Buffer.from(`garbage ${seed}`) },
  ];
}

export const sha256 = (b: Buffer) => `sha256:${createHash("sha256").update(b).digest("hex")}`;

/**
 * Pushes a one-layer image (monolithic blob uploads, then the manifest). `claimedDiffId` makes
 * the config lie about the layer's uncompressed digest.
 */
export async function pushLayer(registryUrl: string, repo: string, tag: string, layer: Buffer, claimedDiffId?: string): Promise<void> {
  let diffId: string;
  try {
    diffId = sha256(gunzipSync(layer));
  } catch {
    diffId = sha256(layer);
  }
  diffId = claimedDiffId ?? diffId;
  const config = Buffer.from(
    JSON.stringify({ architecture: "amd64", os: "linux", config: { Cmd: ["/bin/sh"] }, rootfs: { type: "layers", diff_ids: [diffId] } }),
  );
  for (const blob of [layer, config]) {
    const start = await fetch(`${registryUrl}/v2/${repo}/blobs/uploads/`, { method: "POST" });
    const loc = new URL(start.headers.get("location")!, registryUrl);
    loc.searchParams.set("digest", sha256(blob));
    const put = await fetch(loc, { method: "PUT", body: blob, headers: { "content-type": "application/octet-stream" } });
    if (put.status !== 201) throw new Error(`blob upload: ${put.status} ${await put.text()}`);
  }
  const manifest = {
    schemaVersion: 2,
    mediaType: "application/vnd.oci.image.manifest.v1+json",
    config: { mediaType: "application/vnd.oci.image.config.v1+json", digest: sha256(config), size: config.length },
    layers: [{ mediaType: "application/vnd.oci.image.layer.v1.tar+gzip", digest: sha256(layer), size: layer.length }],
  };
  const res = await fetch(`${registryUrl}/v2/${repo}/manifests/${tag}`, {
    method: "PUT",
    body: JSON.stringify(manifest),
    headers: { "content-type": manifest.mediaType },
  });
  if (res.status !== 201) throw new Error(`manifest: ${res.status} ${await res.text()}`);
}
