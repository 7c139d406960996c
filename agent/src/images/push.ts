/**
 * `docker push`: every layer blob and the config go up unless the registry has them (HEAD), or
 * can mount them from another repository of the same registry the image came from; then the
 * manifest is put under the tag. A pulled image goes up with its original manifest bytes (same
 * digest as where it came from); a built one with a Docker schema 2 manifest made here.
 * Reports Docker's push progress; records the pushed repo digest on the image.
 */
import { createReadStream } from "node:fs";
import * as fs from "node:fs/promises";
import { InvalidError, NotFoundError } from "@flotilla/core";
import { sha256Of } from "./digest";
import { RegistryUnavailableError } from "./errors";
import type { HttpResponse } from "./http";
import { discard } from "./http";
import type { ImageRecord } from "./image-index";
import type { LayerStore } from "./layer-store";
import { MediaType } from "./media-types";
import { layerStatus, shortId, type ProgressListener } from "./progress";
import { canonicalReference, familiarRepository, parseReference, type ImageReference } from "./reference";
import type { Credentials, RegistryClient, RequestContext } from "./registry-client";

/** A push refused by the registry: 401/403 in the registry's words. */
export class PushDeniedError extends InvalidError {}

export interface PushOptions {
  credentials?: Credentials;
  onProgress?: ProgressListener;
  signal?: AbortSignal;
}

export interface PushResult {
  tag: string;
  digest: string;
  size: number;
}

async function failure(client: RegistryClient, ref: ImageReference, res: HttpResponse, what: string): Promise<never> {
  const text = await client.errorText(res);
  if (res.status === 401 || res.status === 403)
    throw new PushDeniedError(
      text || (res.status === 401 ? "unauthorized: authentication required" : "denied: requested access to the resource is denied"),
    );
  throw new RegistryUnavailableError(ref.domain, `${what} answered ${res.status}${text ? `: ${text}` : ""}`);
}

/** What a push reads from the image store and records in it (ImageStore is one). */
export interface PushableStore {
  readonly blobs: LayerStore;
  record(nameOrId: string): ImageRecord;
  recordPush(id: string, repoDigest: string, manifestDigest: string, mediaType: string, manifest: Buffer): Promise<void>;
}

/** Pushes `name` (`host/repo:tag`) from the store. */
export async function push(images: PushableStore, client: RegistryClient, name: string, opts: PushOptions = {}): Promise<PushResult> {
  const ref = parseReference(name);
  if (ref.digest) throw new InvalidError(`cannot push a digest reference: ${name}`);
  const record = images.record(canonicalReference(ref));
  const emit = opts.onProgress ?? (() => {});
  const ctx: RequestContext = { signal: opts.signal, credentials: opts.credentials };
  const repoPath = `/v2/${ref.path}`;
  emit({ status: `The push refers to repository [${familiarRepository(ref)}]` });
  await client.ping(ref.domain, ctx);

  // Other repositories on this registry that hold the image: mount sources.
  const mountFrom = record.repoDigests
    .map((d) => parseReference(d))
    .filter((r) => r.domain === ref.domain && r.path !== ref.path)
    .map((r) => r.path);

  const upload = async (digest: string, size: number, body: () => NodeJS.ReadableStream, short: string | null) => {
    const show = (status: string) => short && emit(layerStatus(status, short));
    const head = await client.call(ref, "HEAD", `${repoPath}/blobs/${digest}`, { actions: "pull,push" }, ctx);
    discard(head);
    if (head.status === 200) return show("Layer already exists");
    if (head.status === 401 || head.status === 403) await failure(client, ref, head, "HEAD blob");
    for (const from of mountFrom) {
      const res = await client.call(
        ref,
        "POST",
        `${repoPath}/blobs/uploads/?mount=${encodeURIComponent(digest)}&from=${encodeURIComponent(from)}`,
        { actions: "pull,push", headers: { "content-length": "0" } },
        ctx,
      );
      discard(res);
      if (res.status === 201) return show(`Mounted from ${from}`);
      if (res.status === 202) break; // The registry started an upload instead; start our own.
    }
    show("Pushing");
    const start = await client.call(
      ref,
      "POST",
      `${repoPath}/blobs/uploads/`,
      { actions: "pull,push", headers: { "content-length": "0" } },
      ctx,
    );
    if (start.status !== 202) await failure(client, ref, start, "starting a blob upload");
    discard(start);
    const location = new URL(String(start.headers.location ?? ""), client.baseUrl(ref.domain));
    location.searchParams.set("digest", digest);
    const put = await client.call(
      ref,
      "PUT",
      location.pathname + location.search,
      { actions: "pull,push", headers: { "content-type": "application/octet-stream", "content-length": String(size) }, body },
      ctx,
    );
    if (put.status !== 201) await failure(client, ref, put, `PUT blob ${digest}`);
    discard(put);
    show("Pushed");
  };

  const layers = record.layers;
  for (const l of [...layers].reverse()) emit(layerStatus("Preparing", shortId(l.digest)));
  for (const l of layers) {
    if (!(await images.blobs.hasBlob(l.digest))) {
      throw new NotFoundError(
        "layer blob",
        `${l.digest}: this image was pulled by an agent that did not keep layer blobs; pull it again to push it`,
      );
    }
  }
  for (const l of [...layers].reverse()) {
    const path = images.blobs.blobPath(l.digest);
    const size = (await fs.stat(path)).size;
    await upload(l.digest, size, () => createReadStream(path), shortId(l.digest));
  }
  const configBytes = await images.blobs.readBlob(record.id);
  await upload(record.id, configBytes.length, () => createReadStream(images.blobs.blobPath(record.id)), null);

  let manifest: Buffer | undefined;
  let mediaType: string;
  if (record.manifestDigest && (await images.blobs.hasBlob(record.manifestDigest))) {
    manifest = await images.blobs.readBlob(record.manifestDigest);
    mediaType = record.manifestMediaType;
  } else {
    // Docker schema 2 when every layer has a Docker media type; otherwise (a build on an OCI base)
    // an OCI manifest, since registries refuse OCI layer types inside a Docker manifest.
    const oci = layers.some((l) => l.mediaType.startsWith("application/vnd.oci."));
    mediaType = oci ? MediaType.ociManifest : MediaType.dockerManifest;
    const layerType = (t: string) => (oci && t === MediaType.dockerLayerGzip ? MediaType.ociLayerGzip : t);
    manifest = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType,
        config: { mediaType: oci ? MediaType.ociConfig : MediaType.dockerConfig, size: configBytes.length, digest: record.id },
        layers: layers.map((l) => ({ mediaType: layerType(l.mediaType), size: l.size, digest: l.digest })),
      }),
    );
  }
  const tag = ref.tag ?? "latest";
  const put = await client.call(
    ref,
    "PUT",
    `${repoPath}/manifests/${tag}`,
    { actions: "pull,push", headers: { "content-type": mediaType, "content-length": String(manifest.length) }, body: manifest },
    ctx,
  );
  if (put.status !== 201) await failure(client, ref, put, "PUT manifest");
  discard(put);
  const digest = sha256Of(manifest);
  await images.recordPush(record.id, `${canonicalReference({ ...ref, tag: undefined, digest })}`, digest, mediaType, manifest);
  emit({ status: `${tag}: digest: ${digest} size: ${manifest.length}` });
  return { tag, digest, size: manifest.length };
}
