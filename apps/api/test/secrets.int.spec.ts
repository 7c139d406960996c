// Secrets and configs against the real API and Postgres: created, listed, inspected (a secret
// never with its value, a config with it), immutable, removed; bad input refused naming the
// field with nothing stored; the value AES-256-GCM encrypted in the database with a key file
// outside it (0600), never in an event; a ciphertext moved onto another row does not open; a
// key file others may read is refused; a rotation re-encrypts everything under a new key.
import { randomBytes } from "node:crypto";
import { chmodSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestApi, type TestApi } from "./support";

interface ValueView {
  id: string;
  name: string;
  size: number;
  data?: string;
}

describe("secrets and configs", () => {
  let api: TestApi;
  let db: pg.Client;
  let operator: string;
  // Random, so finding it anywhere cannot be a coincidence.
  const VALUE = `s3cret-${randomBytes(12).toString("hex")}`;
  const b64 = (s: string | Buffer) => Buffer.from(s).toString("base64");
  const send = (method: string, path: string, body?: unknown, token?: string) =>
    api.fetch(path, { method, ...(token ? { token } : {}), ...(body !== undefined ? { body: JSON.stringify(body) } : {}) });
  const keyFile = () => join(api.config.configDir, "secrets.key");
  /** Every byte the database holds of secrets and events, as text (bytea as raw bytes too). */
  const everythingStored = async () => {
    const secrets = await db.query(`SELECT name, ciphertext, iv, tag, "keyId", labels::text FROM "Secret"`);
    const events = await db.query(`SELECT kind, action, data::text FROM "Event"`);
    return (
      JSON.stringify(events.rows) + secrets.rows.map((r) => `${JSON.stringify(r)}${Buffer.from(r.ciphertext).toString("latin1")}`).join()
    );
  };

  beforeAll(async () => {
    api = await startTestApi({ FLOTILLA_ROLE: "api" });
    db = new pg.Client({ connectionString: api.db.url });
    await db.connect();
    const res = await send("POST", "/api/v1/tokens", { name: "ops", role: "operator" });
    operator = ((await res.json()) as { token: string }).token;
  });
  afterAll(async () => {
    await db?.end();
    await api?.stop();
  });

  it("creates a secret, never shows its value, and keeps it encrypted with a 0600 key file", async () => {
    const res = await send("POST", "/api/v1/secrets", { name: "db_password", data: b64(VALUE) });
    expect(res.status).toBe(201);
    const created = (await res.json()) as ValueView;
    expect(created).toMatchObject({ name: "db_password", size: VALUE.length });
    expect(created).not.toHaveProperty("data");
    const shown = await (await send("GET", "/api/v1/secrets/db_password")).text();
    const listed = await (await send("GET", "/api/v1/secrets")).text();
    for (const text of [JSON.stringify(created), shown, listed]) {
      expect(text).not.toContain(VALUE);
      expect(text).not.toContain(b64(VALUE));
    }
    expect(statSync(keyFile()).mode & 0o777).toBe(0o600);
    const stored = await everythingStored();
    expect(stored).not.toContain(VALUE);
    expect(stored).not.toContain(b64(VALUE));
    expect(stored).toContain("db_password");
  });

  it("returns a config's value, and refuses a second value under a taken name", async () => {
    expect((await send("POST", "/api/v1/configs", { name: "nginx.conf", data: b64("worker_processes 1;\n") })).status).toBe(201);
    const cfg = (await (await send("GET", "/api/v1/configs/nginx.conf")).json()) as ValueView;
    expect(Buffer.from(cfg.data!, "base64").toString()).toBe("worker_processes 1;\n");
    const again = await send("POST", "/api/v1/secrets", { name: "db_password", data: b64("other") });
    expect(again.status).toBe(409);
    expect(((await again.json()) as { message: string }).message).toContain("immutable");
    // A secret and a config may share a name: they are different kinds.
    expect((await send("POST", "/api/v1/configs", { name: "db_password", data: b64("x") })).status).toBe(201);
  });

  it.each([
    [{ name: "big", data: b64(Buffer.alloc(500 * 1024 + 1)) }, "data", "more than the limit of 512000 bytes"],
    [{ name: "empty", data: "" }, "data", "must not be empty"],
    [{ name: "bad", data: "not base64!" }, "data", "data must be base64"],
    [{ name: "-x", data: b64("v") }, "name", "invalid secret name"],
    [{ name: "x".repeat(65), data: b64("v") }, "name", "invalid secret name"],
    [{ name: "x", data: b64("v"), extra: 1 }, "(body)", "Unrecognized key"],
  ])("refuses %#, naming %s, storing nothing", async (body, field, message) => {
    const before = ((await (await send("GET", "/api/v1/secrets")).json()) as ValueView[]).length;
    const res = await send("POST", "/api/v1/secrets", body);
    expect(res.status).toBe(400);
    const err = (await res.json()) as { message: string; details: { field: string } };
    expect(err.details.field).toBe(field);
    expect(err.message).toContain(message);
    expect(((await (await send("GET", "/api/v1/secrets")).json()) as ValueView[]).length).toBe(before);
  });

  it("does not open a ciphertext moved onto another row", async () => {
    await send("POST", "/api/v1/configs", { name: "victim", data: b64("public") });
    await db.query(
      `UPDATE "Secret" v SET ciphertext = s.ciphertext, iv = s.iv, tag = s.tag FROM "Secret" s
       WHERE v.name = 'victim' AND v.kind = 'CONFIG' AND s.name = 'db_password' AND s.kind = 'SECRET'`,
    );
    const res = await send("GET", "/api/v1/configs/victim");
    expect(res.status).toBe(503);
    expect(await res.text()).not.toContain(VALUE);
    expect((await send("DELETE", "/api/v1/configs/victim")).status).toBe(204);
  });

  it("rotates the key (admin only): every value re-encrypted, still readable, the old key gone", async () => {
    const refused = await send("POST", "/api/v1/secrets/rotate-key", undefined, operator);
    expect(refused.status).toBe(403);
    const oldKey = readFileSync(keyFile(), "utf8");
    const oldIds = (await db.query(`SELECT DISTINCT "keyId" FROM "Secret"`)).rows;
    const res = await send("POST", "/api/v1/secrets/rotate-key");
    expect(res.status).toBe(200);
    const rotated = (await res.json()) as { resealed: number; keyId: string };
    expect(rotated.resealed).toBe(3);
    expect(readFileSync(keyFile(), "utf8")).not.toBe(oldKey);
    expect(statSync(keyFile()).mode & 0o777).toBe(0o600);
    expect((await db.query(`SELECT DISTINCT "keyId" FROM "Secret"`)).rows).toEqual([{ keyId: rotated.keyId }]);
    expect(oldIds).not.toContainEqual({ keyId: rotated.keyId });
    const cfg = (await (await send("GET", "/api/v1/configs/nginx.conf")).json()) as ValueView;
    expect(Buffer.from(cfg.data!, "base64").toString()).toBe("worker_processes 1;\n");
    expect(await everythingStored()).not.toContain(VALUE);
  });

  it("refuses to use a key file others may read", async () => {
    chmodSync(keyFile(), 0o644);
    try {
      const res = await send("GET", "/api/v1/configs/nginx.conf");
      // The key is held in memory; a reload (as after a rotation elsewhere) reads the file again.
      expect([200, 503]).toContain(res.status);
      const rotate = await send("POST", "/api/v1/secrets/rotate-key");
      expect(rotate.status).toBe(503);
      expect(((await rotate.json()) as { message: string }).message).toMatch(/may be read by others \(mode 644\): chmod 600/);
    } finally {
      chmodSync(keyFile(), 0o600);
    }
  });

  it("removes secrets and configs, recording only their names in events", async () => {
    expect((await send("DELETE", "/api/v1/secrets/db_password")).status).toBe(204);
    expect((await send("GET", "/api/v1/secrets/db_password")).status).toBe(404);
    expect((await send("DELETE", "/api/v1/secrets/db_password")).status).toBe(404);
    const events = (await db.query(`SELECT kind, action, data FROM "Event" WHERE kind IN ('secret', 'config') ORDER BY id`)).rows;
    expect(events.map((e) => `${e.kind} ${e.action}`)).toContain("secret remove");
    expect(JSON.stringify(events)).not.toContain(VALUE);
  });
});
