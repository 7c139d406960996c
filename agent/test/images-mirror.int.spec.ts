// Docker Hub mirrors (--registry-mirror) against a real registry on loopback standing in for the
// mirror: a Docker Hub reference is pulled from the first mirror that answers, is recorded as
// Docker Hub's image, and an http:// mirror is spoken to over plain HTTP without being listed as
// insecure. Docker Hub itself is never asked: every test's mirror has what is pulled, since
// tests send no traffic beyond loopback.
import * as fs from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ImageStore, type ProgressMessage } from "../src/images";
import { FIXTURE_TAGS, layoutImage } from "../../test/support/busybox-image";
import { startRegistry, type TestRegistry } from "../../test/support/registry";

const roots: string[] = [];
let registry: TestRegistry;
const busybox = layoutImage(FIXTURE_TAGS.busybox);

/** A loopback port nobody listens on: bound, then closed. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as { port: number }).port;
  await new Promise<void>((r) => server.close(() => r()));
  return port;
}

async function openStore(registryMirrors: string[]): Promise<ImageStore> {
  const root = fs.mkdtempSync(join(tmpdir(), "flotilla-mirror-"));
  roots.push(root);
  return ImageStore.open({ root, registryMirrors });
}

beforeAll(async () => {
  registry = await startRegistry();
  await registry.pushBusybox("library/busybox:latest");
});

afterAll(async () => {
  await registry?.stop();
  for (const r of roots) fs.rmSync(r, { recursive: true, force: true });
});

describe("registry mirrors", () => {
  it("pulls a Docker Hub image from the first mirror that answers, skipping a dead one, and records it as Docker Hub's", async () => {
    const dead = await closedPort();
    const store = await openStore([`http://127.0.0.1:${dead}`, `http://${registry.host}`]);
    const messages: ProgressMessage[] = [];
    const result = await store.pull("busybox", { onProgress: (m) => messages.push(m) });
    expect(result).toEqual({ id: busybox.configDigest, reference: "busybox:latest", digest: busybox.manifestDigest, upToDate: false });
    const skipped = messages.find((m) => m.status.startsWith(`mirror 127.0.0.1:${dead}:`));
    expect(skipped?.status).toMatch(
      new RegExp(`^mirror 127\\.0\\.0\\.1:${dead}: .*unreachable.*; trying ${registry.host.replace(/\./g, "\\.")}$`),
    );
    const inspect = await store.inspect("busybox");
    expect(inspect).toMatchObject({
      Id: busybox.configDigest,
      RepoTags: ["busybox:latest"],
      RepoDigests: [`busybox@${busybox.manifestDigest}`],
    });
  });

  it("does not send other registries' images through the mirror", async () => {
    const store = await openStore([`http://${registry.host}`]);
    const dead = await closedPort();
    // The mirror has library/busybox, but this reference names another registry: only that one is asked.
    const err = await store.pull(`127.0.0.1:${dead}/library/busybox:latest`).then(
      () => undefined,
      (e: Error) => e,
    );
    expect(err?.message).toContain(`127.0.0.1:${dead}`);
    expect(await store.list()).toEqual([]);
  });
});
