// The listings ctl and the console poll: ETags with 304 for an unchanged answer, and concurrent
// requests sharing one query without ever answering from before a write they follow.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { TestApi } from "./support";
import type { SimAgent } from "../../../test/support/sim-agent";
import { converged, send, simNodes, startFastApi } from "./services-support";

describe("listings", () => {
  let api: TestApi;
  let agents: SimAgent[];
  beforeAll(async () => {
    api = await startFastApi();
    agents = await simNodes(api, 2);
    expect((await send(api, "POST", "/api/v1/services", { name: "etag-web", image: "busybox", replicas: 2 })).status).toBe(201);
    await converged(api, "etag-web", 2);
  });
  afterAll(async () => {
    await Promise.all((agents ?? []).map((a) => a.stop()));
    await api?.stop();
  });

  it.each(["/api/v1/services", "/api/v1/nodes", "/api/v1/tasks?service=etag-web"])(
    "%s: an ETag, 304 with no body for it, 200 with a new one after a change",
    async (path) => {
      const first = await api.fetch(path);
      expect(first.status).toBe(200);
      expect(first.headers.get("content-type")).toMatch(/^application\/json/);
      expect(first.headers.get("cache-control")).toBe("private, no-cache");
      const etag = first.headers.get("etag");
      expect(etag).toMatch(/^"[A-Za-z0-9_-]+"$/);
      const body = (await first.json()) as unknown[];
      expect(body.length).toBeGreaterThan(0);

      const again = await api.fetch(path, { headers: { "if-none-match": etag! } });
      expect(again.status).toBe(304);
      expect(again.headers.get("etag")).toBe(etag);
      expect(await again.text()).toBe("");
      // Another tag: the full answer.
      expect((await api.fetch(path, { headers: { "if-none-match": '"stale"' } })).status).toBe(200);

      // A change the listing shows: a label on the nodes, a scale for services and tasks.
      if (path.includes("nodes")) {
        expect((await send(api, "PATCH", "/api/v1/nodes/sim-1", { labelAdd: { etag: path } })).status).toBe(200);
      } else {
        const svc = (await (await api.fetch("/api/v1/services/etag-web")).json()) as { desired: number };
        expect((await send(api, "POST", "/api/v1/services/etag-web/scale", { replicas: svc.desired + 1 })).status).toBe(200);
        await converged(api, "etag-web", svc.desired + 1);
      }
      const changed = await api.fetch(path, { headers: { "if-none-match": etag! } });
      expect(changed.status).toBe(200);
      expect(changed.headers.get("etag")).not.toBe(etag);
    },
  );

  it("answers concurrent requests with what was committed before each of them was sent", async () => {
    const before = (await (await api.fetch("/api/v1/services/etag-web")).json()) as { desired: number };
    const reads = (n: number) =>
      Promise.all(
        Array.from({ length: n }, async () => (await (await api.fetch("/api/v1/services")).json()) as { name: string; desired: number }[]),
      );
    // A crowd of readers keeps a query running while the scale commits...
    const crowd = reads(50);
    expect((await send(api, "POST", "/api/v1/services/etag-web/scale", { replicas: before.desired + 1 })).status).toBe(200);
    // ...and every request sent after the scale was acknowledged sees it.
    const after = await reads(20);
    for (const list of after) expect(list.find((s) => s.name === "etag-web")?.desired).toBe(before.desired + 1);
    expect((await crowd).every((list) => list.some((s) => s.name === "etag-web"))).toBe(true);
  });

  it("still answers 404 naming the service for a task listing of an unknown one", async () => {
    const res = await api.fetch("/api/v1/tasks?service=nope");
    expect(res.status).toBe(404);
  });
});
