import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { startTestApi, type TestApi } from "./support";

// The API serves the built console at `/` beside the REST API, without changing the API.
describe("console served by the API", () => {
  let api: TestApi;
  beforeAll(async () => {
    if (!existsSync(join(__dirname, "..", "..", "console", "dist", "index.html"))) {
      throw new Error("the console is not built: run `npx vite build --config apps/console/vite.config.ts` (part of `npm run build`)");
    }
    api = await startTestApi({ FLOTILLA_ROLE: "api" });
  });
  afterAll(async () => {
    await api?.stop();
  });

  it("serves index.html at / and for app routes, without a token", async () => {
    for (const p of ["/", "/services/web", "/map"]) {
      const res = await api.fetch(p, { token: null });
      expect(res.status, p).toBe(200);
      expect(res.headers.get("content-type")).toBe("text/html; charset=utf-8");
      expect(res.headers.get("cache-control")).toBe("no-cache");
      expect(await res.text()).toContain('<div id="root">');
    }
  });

  it("serves the hashed assets index.html names, as immutable", async () => {
    const html = await (await api.fetch("/", { token: null })).text();
    const assets = [...html.matchAll(/(?:src|href)="(\/assets\/[^"]+)"/g)].map((m) => m[1]);
    expect(assets.length).toBeGreaterThan(0);
    for (const a of assets) {
      const res = await api.fetch(a, { token: null });
      expect(res.status, a).toBe(200);
      expect(res.headers.get("cache-control")).toContain("immutable");
      expect(res.headers.get("content-type")).toMatch(/^(text\/javascript|text\/css)/);
    }
  });

  it("leaves /api alone: unknown API paths keep their JSON 404, other methods too", async () => {
    for (const [method, p] of [
      ["GET", "/api/v1/nope"],
      ["GET", "/api"],
      ["GET", "/api/v1/services/x/nope?since=1"],
      ["POST", "/console-nothing"],
    ] as const) {
      const res = await api.fetch(p, { method, token: null });
      expect(res.status, p).toBe(404);
      expect(res.headers.get("content-type"), p).toMatch(/^application\/json/);
      expect(await res.json(), p).toEqual({ error: "not_found", message: `Cannot ${method} ${p}`, details: {} });
    }
    expect((await api.fetch("/api/v1/services", { token: null })).status).toBe(401);
    expect((await api.fetch("/api/v1/health", { token: null })).status).toBe(200);
    expect((await api.fetch("/api/docs", { token: null })).status).toBe(200);
  });

  it("keeps the console out of the OpenAPI document", async () => {
    const doc = (await (await api.fetch("/api/docs-json")).json()) as { paths: Record<string, unknown> };
    expect(Object.keys(doc.paths).filter((p) => !p.startsWith("/api/"))).toEqual([]);
  });

  it("does not let a path climb out of the build", async () => {
    for (const p of ["/..%2f..%2fpackage.json", "/assets/..%2f..%2f..%2f..%2fpackage.json", "/%2e%2e/%2e%2e/package.json"]) {
      const res = await api.fetch(p, { token: null });
      expect(await res.text(), p).not.toContain('"workspaces"');
    }
  });
});
