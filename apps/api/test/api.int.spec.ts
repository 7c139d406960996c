import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { statSync } from "node:fs";
import { join } from "node:path";
import pg from "pg";
import { startTestApi, type TestApi } from "./support";

describe("control plane HTTP API", () => {
  let api: TestApi;
  beforeAll(async () => {
    api = await startTestApi({ FLOTILLA_ROLE: "api" });
  });
  afterAll(() => api?.stop());

  it("serves health without a token and reports Postgres and Redis", async () => {
    const res = await api.fetch("/api/v1/health", { token: null });
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ status: "ok", postgres: { ok: true }, redis: { ok: true }, role: "api" });
  });

  it("writes the first admin token for ctl with mode 0600", () => {
    const file = join(api.config.configDir, "config.json");
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(api.token).toMatch(/^flt_[A-Za-z0-9_-]{43}$/);
  });

  it("stores tokens hashed, never the secret", async () => {
    const c = new pg.Client({ connectionString: api.db.url });
    await c.connect();
    const { rows } = await c.query(`SELECT hash FROM "ApiToken"`);
    await c.end();
    expect(rows.length).toBe(1);
    expect(rows[0].hash).not.toContain(api.token);
    expect(rows[0].hash).toMatch(/^[0-9a-f]{64}$/);
  });

  it.each([
    ["no token", null, /missing API token/],
    ["a wrong token", "flt_wrong", /invalid API token/],
    ["a malformed header", "", /malformed Authorization header/],
  ])("answers 401 to %s", async (_what, token, message) => {
    const init = token === "" ? { token: null, headers: { authorization: "Basic abc" } } : { token };
    const res = await api.fetch("/api/v1/tokens", init);
    expect(res.status).toBe(401);
    const body = await res.json();
    expect(body).toMatchObject({ error: "unauthorized" });
    expect(body.message).toMatch(message);
  });

  it("accepts a good token, creates another, and revokes it", async () => {
    const created = await api.fetch("/api/v1/tokens", { method: "POST", body: JSON.stringify({ name: "ci" }) });
    expect(created.status).toBe(201);
    const { token } = await created.json();
    expect((await api.fetch("/api/v1/tokens", { token })).status).toBe(200);
    expect((await api.fetch("/api/v1/tokens/ci", { method: "DELETE" })).status).toBe(204);
    expect((await api.fetch("/api/v1/tokens", { token })).status).toBe(401);
  });

  it("maps domain errors: 409 on duplicates, 404 on unknown, 400 naming the field", async () => {
    const dup = await api.fetch("/api/v1/tokens", { method: "POST", body: JSON.stringify({ name: "admin" }) });
    expect(dup.status).toBe(409);
    expect(await dup.json()).toEqual({ error: "conflict", message: 'a token named "admin" already exists', details: { field: "name" } });
    const missing = await api.fetch("/api/v1/tokens/nobody", { method: "DELETE" });
    expect(missing.status).toBe(404);
    expect(await missing.json()).toMatchObject({ error: "not_found", message: "token not found: nobody" });
    const bad = await api.fetch("/api/v1/tokens", { method: "POST", body: JSON.stringify({ name: 42 }) });
    expect(bad.status).toBe(400);
    expect(await bad.json()).toMatchObject({ error: "invalid", details: { field: "name" } });
    const broken = await api.fetch("/api/v1/tokens", { method: "POST", body: "{" });
    expect(broken.status).toBe(400);
    expect((await broken.json()).error).toBe("invalid");
  });

  it("publishes the OpenAPI document with bearer auth", async () => {
    const res = await api.fetch("/api/docs-json", { token: null });
    expect(res.status).toBe(200);
    const doc = await res.json();
    expect(doc.components.securitySchemes.bearer).toMatchObject({ type: "http", scheme: "bearer" });
    expect(Object.keys(doc.paths)).toEqual(expect.arrayContaining(["/api/v1/health", "/api/v1/events", "/api/v1/tokens"]));
  });
});

describe("health with a dependency down", () => {
  it("reports Postgres down with 503 and the cause", async () => {
    const api = await startTestApi({ FLOTILLA_ROLE: "api" });
    try {
      // Dropping the database under the running API is what "Postgres gone" looks like to it.
      const admin = new pg.Client({ connectionString: api.db.url.replace(/\/[^/]+$/, "/postgres") });
      await admin.connect();
      await admin.query(`DROP DATABASE ${api.db.name} WITH (FORCE)`);
      await admin.end();
      const res = await api.fetch("/api/v1/health", { token: null });
      expect(res.status).toBe(503);
      const body = await res.json();
      expect(body).toMatchObject({ status: "degraded", postgres: { ok: false }, redis: { ok: true } });
      expect(body.postgres.error).toBeTruthy();
    } finally {
      await api.stop();
    }
  });

  it("reports Redis down with 503", async () => {
    // Port 1 on loopback: nothing listens there.
    const api = await startTestApi({ FLOTILLA_ROLE: "api", REDIS_URL: "redis://127.0.0.1:1" });
    try {
      const res = await api.fetch("/api/v1/health", { token: null });
      expect(res.status).toBe(503);
      expect(await res.json()).toMatchObject({ status: "degraded", postgres: { ok: true }, redis: { ok: false } });
    } finally {
      await api.stop();
    }
  });
});
