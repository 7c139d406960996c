import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ConsoleFiles } from "../src/console/console-files";

describe("console files", () => {
  let dir: string;
  let files: ConsoleFiles;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "flotilla-console-"));
    const dist = join(dir, "dist");
    mkdirSync(join(dist, "assets"), { recursive: true });
    writeFileSync(join(dist, "index.html"), "<!doctype html><title>console</title>");
    writeFileSync(join(dist, "assets", "index-abc123.js"), "console.log(1)");
    writeFileSync(join(dir, "secret.txt"), "outside the build");
    files = new ConsoleFiles(dist);
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("answers 503 in plain words when the console was not built", async () => {
    const a = await new ConsoleFiles(join(dir, "nowhere")).answer("/");
    expect(a.status).toBe(503);
    expect(a.headers["content-type"]).toMatch(/^text\/plain/);
    expect(String(a.body)).toMatch(/console is not built.*\n.*npm run build/);
  });

  it("serves index.html at / and for app routes, never cached, with a CSP", async () => {
    for (const p of ["/", "/services/web", "/machines", "/index.html"]) {
      const a = await files.answer(p);
      expect(a.status, p).toBe(200);
      expect(a.headers["content-type"]).toBe("text/html; charset=utf-8");
      expect(a.headers["cache-control"]).toBe("no-cache");
      expect(a.headers["content-security-policy"]).toContain("default-src 'self'");
      expect(a.headers["content-security-policy"]).toContain("connect-src 'self';");
      expect(String(a.body)).toContain("<title>console</title>");
    }
  });

  it("lets the page call the other API replicas, and nothing else", async () => {
    const a = await new ConsoleFiles(files.root, ["http://10.0.0.12:8080", "https://api-c.example"]).answer("/");
    expect(a.headers["content-security-policy"]).toContain("connect-src 'self' http://10.0.0.12:8080 https://api-c.example;");
    expect(a.headers["content-security-policy"]).toContain("default-src 'self';");
  });

  it("serves hashed assets as immutable, with their type", async () => {
    const a = await files.answer("/assets/index-abc123.js");
    expect(a.status).toBe(200);
    expect(a.headers["content-type"]).toBe("text/javascript; charset=utf-8");
    expect(a.headers["cache-control"]).toBe("public, max-age=31536000, immutable");
    expect(String(a.body)).toBe("console.log(1)");
    const again = await files.answer("/assets/index-abc123.js", a.headers.etag);
    expect(again.status).toBe(304);
  });

  it("answers 404 for a missing file instead of HTML", async () => {
    const a = await files.answer("/assets/index-gone.js");
    expect(a.status).toBe(404);
    expect(a.headers["content-type"]).toMatch(/^text\/plain/);
  });

  it("never reads outside the build", async () => {
    for (const p of ["/../secret.txt", "/..%2fsecret.txt", "/assets/..%2f..%2fsecret.txt", "/%2e%2e/secret.txt", "/..\\secret.txt"]) {
      const a = await files.answer(p);
      expect(String(a.body), p).not.toContain("outside the build");
      expect([400, 404, 200], p).toContain(a.status);
      if (a.status === 200) expect(a.headers["content-type"], p).toBe("text/html; charset=utf-8");
    }
    expect((await files.answer("/%00")).status).toBe(400);
    expect((await files.answer("/%E0%A4%A")).status).toBe(400);
  });
});
