// The listings ctl and the console poll: ETags with 304 for an unchanged answer, and concurrent
// requests sharing one query without ever answering from before a write they follow.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import http from "node:http";
import { gunzipSync } from "node:zlib";
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

  it("sends the gzip encoding, made once per version, to a client that accepts it; either ETag gets 304", async () => {
    // Raw HTTP: fetch would decode (and ask for) gzip by itself.
    const raw = (path: string, headers: Record<string, string>) =>
      new Promise<{ status: number; headers: http.IncomingHttpHeaders; body: Buffer }>((resolve, reject) => {
        const u = new URL(api.url + path);
        const req = http.get(
          { host: u.hostname, port: u.port, path, headers: { authorization: `Bearer ${api.token}`, ...headers } },
          (res) => {
            const chunks: Buffer[] = [];
            res.on("data", (c: Buffer) => chunks.push(c));
            res.on("end", () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks) }));
          },
        );
        req.on("error", reject);
      });
    const plain = await raw("/api/v1/tasks?service=etag-web", {});
    const zipped = await raw("/api/v1/tasks?service=etag-web", { "accept-encoding": "gzip, deflate, br" });
    expect(plain.headers["content-encoding"]).toBeUndefined();
    expect(zipped.headers["content-encoding"]).toBe("gzip");
    for (const r of [plain, zipped]) expect(r.headers.vary).toBe("accept-encoding");
    expect(gunzipSync(zipped.body).equals(plain.body)).toBe(true);
    expect(zipped.body.length).toBeLessThan(plain.body.length);
    expect(zipped.headers.etag).toBe(`${plain.headers.etag!.slice(0, -1)}-gz"`);
    // A client that refuses gzip gets the JSON as it is.
    expect(
      (await raw("/api/v1/tasks?service=etag-web", { "accept-encoding": "gzip;q=0, identity" })).headers["content-encoding"],
    ).toBeUndefined();
    for (const etag of [plain.headers.etag!, zipped.headers.etag!]) {
      const again = await raw("/api/v1/tasks?service=etag-web", { "accept-encoding": "gzip", "if-none-match": etag });
      expect(again.status).toBe(304);
      expect(again.body.length).toBe(0);
    }
  });

  it("the OpenAPI document tells the ETag, If-None-Match, 304 and the gzip encoding of each listing", async () => {
    const doc = (await (await api.fetch("/api/docs-json", { token: null })).json()) as {
      paths: Record<
        string,
        { get: { parameters: { name: string; in: string }[]; responses: Record<string, { headers?: Record<string, unknown> }> } }
      >;
    };
    for (const path of ["/api/v1/services", "/api/v1/nodes", "/api/v1/tasks"]) {
      const get = doc.paths[path]!.get;
      expect(get.parameters.filter((p) => p.in === "header").map((p) => p.name)).toEqual(
        expect.arrayContaining(["If-None-Match", "Accept-Encoding"]),
      );
      expect(Object.keys(get.responses)).toEqual(expect.arrayContaining(["200", "304"]));
      expect(Object.keys(get.responses["200"]!.headers ?? {})).toEqual(expect.arrayContaining(["ETag", "Content-Encoding", "Vary"]));
    }
  });

  it("still answers 404 naming the service for a task listing of an unknown one", async () => {
    const res = await api.fetch("/api/v1/tasks?service=nope");
    expect(res.status).toBe(404);
  });
});
