// Secrets and configs named by services, against the real API, Postgres and Redis: the spec holds
// references with their defaults (never a value), a reference to a missing value is a 400 naming
// the field with nothing created, a value in use cannot be removed (409 naming the services), and
// once no service names it, it can. A service's registry credentials are stored sealed, shown only
// as their registry, survive a key rotation, and go with the service.
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SecretsService } from "../src/secrets/secrets.service";
import { startTestApi, type TestApi } from "./support";

interface ServiceJson {
  name: string;
  version: number;
  spec: { secrets: unknown[]; configs: unknown[] };
}

describe("services naming secrets and configs", () => {
  let api: TestApi;
  const send = (method: string, path: string, body?: unknown) =>
    api.fetch(path, { method, ...(body !== undefined ? { body: JSON.stringify(body) } : {}) });
  const names = async () => ((await (await send("GET", "/api/v1/services")).json()) as ServiceJson[]).map((s) => s.name).sort();
  const VALUE = "hunter2-in-the-spec?";

  beforeAll(async () => {
    api = await startTestApi({ FLOTILLA_ROLE: "api" });
    for (const [kind, name] of [
      ["secrets", "db_pass"],
      ["secrets", "api_key"],
      ["configs", "app.conf"],
    ]) {
      const r = await send("POST", `/api/v1/${kind}`, { name, data: Buffer.from(VALUE).toString("base64") });
      expect(r.status).toBe(201);
    }
  });
  afterAll(() => api?.stop());

  it("stores references with their defaults, never a value", async () => {
    const res = await send("POST", "/api/v1/services", {
      name: "web",
      image: "busybox",
      secrets: [{ source: "db_pass" }, { source: "api_key", target: "key", uid: "1000", mode: 0o400 }],
      configs: [{ source: "app.conf", target: "/etc/app.conf" }],
    });
    const text = await res.text();
    expect(res.status, text).toBe(201);
    expect(text).not.toContain(VALUE);
    const svc = JSON.parse(text) as ServiceJson;
    expect(svc.spec.secrets).toEqual([
      { source: "db_pass", target: "/run/secrets/db_pass", uid: "0", gid: "0", mode: 0o444 },
      { source: "api_key", target: "/run/secrets/key", uid: "1000", gid: "0", mode: 0o400 },
    ]);
    expect(svc.spec.configs).toEqual([{ source: "app.conf", target: "/etc/app.conf", uid: "0", gid: "0", mode: 0o444 }]);
  });

  it("refuses a reference to a missing secret or config, naming the field, creating nothing", async () => {
    const res = await send("POST", "/api/v1/services", {
      name: "nope",
      image: "busybox",
      secrets: [{ source: "db_pass" }, { source: "ghost" }],
    });
    expect(res.status).toBe(400);
    const body = (await res.json()) as { message: string; details: { field: string } };
    expect(body.message).toMatch(/secret not found: ghost/);
    expect(body.details.field).toBe("secrets[1].source");
    expect(await names()).toEqual(["web"]);
    const upd = await send("PATCH", "/api/v1/services/web", { configs: [{ source: "ghost.conf" }] });
    expect(upd.status).toBe(400);
    expect(((await upd.json()) as { details: { field: string } }).details.field).toBe("configs[0].source");
    expect(((await (await send("GET", "/api/v1/services/web")).json()) as ServiceJson).version).toBe(1);
  });

  it("refuses to remove a value in use (409 naming the services), and removes it once unused", async () => {
    const second = await send("POST", "/api/v1/services", { name: "worker", image: "busybox", secrets: [{ source: "db_pass" }] });
    expect(second.status).toBe(201);
    const rm = await send("DELETE", "/api/v1/secrets/db_pass");
    expect(rm.status).toBe(409);
    expect(((await rm.json()) as { message: string }).message).toBe("secret db_pass is in use by services web, worker");
    const rmConfig = await send("DELETE", "/api/v1/configs/app.conf");
    expect(rmConfig.status).toBe(409);
    expect(((await rmConfig.json()) as { message: string }).message).toBe("config app.conf is in use by service web");
    // Still there after the refusals.
    expect((await send("GET", "/api/v1/secrets/db_pass")).status).toBe(200);

    expect((await send("PATCH", "/api/v1/services/web", { secrets: [{ source: "api_key" }], configs: [] })).status).toBe(200);
    expect((await send("DELETE", "/api/v1/services/worker")).status).toBe(204);
    expect((await send("DELETE", "/api/v1/secrets/db_pass")).status).toBe(204);
    expect((await send("DELETE", "/api/v1/configs/app.conf")).status).toBe(204);
    // web's previous spec named db_pass: rolling back to it is refused, naming the missing secret.
    const rb = await send("POST", "/api/v1/services/web/rollback");
    expect(rb.status).toBe(400);
    expect(((await rb.json()) as { message: string }).message).toMatch(/secret not found: db_pass/);
  });

  it("documents secrets and configs in the OpenAPI document", async () => {
    const doc = (await (await send("GET", "/api/docs-json")).json()) as {
      paths: Record<string, { post?: { requestBody?: { content: Record<string, { schema: { properties: Record<string, unknown> } }> } } }>;
    };
    const props = doc.paths["/api/v1/services"].post!.requestBody!.content["application/json"].schema.properties;
    expect(props).toHaveProperty("secrets");
    expect(props).toHaveProperty("configs");
  });

  it("keeps a service's registry credentials sealed, shows only their registry, and removes them with the service", async () => {
    const PASSWORD = `pw-${Date.now()}-registry`;
    const auth = { username: "alice", password: PASSWORD, serverAddress: "registry.example.com:5000" };
    const res = await send("POST", "/api/v1/services", { name: "private", image: "registry.example.com:5000/app", registryAuth: auth });
    const text = await res.text();
    expect(res.status, text).toBe(201);
    expect(text).not.toContain(PASSWORD);
    const id = (JSON.parse(text) as { id: string }).id;
    expect(((await (await send("GET", "/api/v1/services/private")).json()) as { registryAuth: unknown }).registryAuth).toEqual({
      serverAddress: "registry.example.com:5000",
    });
    expect(await (await send("GET", "/api/v1/services")).text()).not.toContain(PASSWORD);
    expect(await (await send("GET", "/api/v1/secrets")).text()).not.toContain(id);
    const db = new pg.Client({ connectionString: api.db.url });
    await db.connect();
    try {
      const rows = await db.query(`SELECT ciphertext, labels::text FROM "Secret" WHERE kind = 'REGISTRY_AUTH' AND name = $1`, [id]);
      expect(rows.rowCount).toBe(1);
      expect(Buffer.from(rows.rows[0].ciphertext).toString("latin1")).not.toContain(PASSWORD);
      expect(rows.rows[0].labels).not.toContain(PASSWORD);

      // Re-sealed by a rotation and still opened by dispatch's path, as X-Registry-Auth.
      expect((await send("POST", "/api/v1/secrets/rotate-key")).status).toBe(200);
      const header = await api.running.app.get(SecretsService).registryAuthHeader(id);
      expect(JSON.parse(Buffer.from(header!, "base64url").toString("utf8"))).toEqual({
        username: "alice",
        password: PASSWORD,
        serveraddress: "registry.example.com:5000",
      });
      // New credentials on update replace the old ones without a new version.
      const upd = await send("PATCH", "/api/v1/services/private", { registryAuth: { ...auth, password: "new" } });
      expect(upd.status).toBe(200);
      expect(((await upd.json()) as { version: number }).version).toBe(1);
      const again = await api.running.app.get(SecretsService).registryAuthHeader(id);
      expect(JSON.parse(Buffer.from(again!, "base64url").toString("utf8"))).toMatchObject({ password: "new" });

      expect((await send("DELETE", "/api/v1/services/private")).status).toBe(204);
      expect((await db.query(`SELECT 1 FROM "Secret" WHERE kind = 'REGISTRY_AUTH'`)).rowCount).toBe(0);
    } finally {
      await db.end();
    }
  });

  it("deploys a stack naming external secrets and configs, and refuses one naming a missing one, creating nothing", async () => {
    const compose = (secret: string) =>
      [
        "services:",
        "  app:",
        "    image: busybox",
        "    secrets: [db, { source: key, target: /etc/key, mode: '0400' }]",
        "    configs: [conf]",
        "  other:",
        "    image: busybox",
        "secrets:",
        `  db: { external: true, name: ${secret} }`,
        "  key: { external: true, name: api_key }",
        "configs:",
        "  conf: { external: true, name: shop.conf }",
        "",
      ].join("\n");
    expect((await send("POST", "/api/v1/configs", { name: "shop.conf", data: Buffer.from("c").toString("base64") })).status).toBe(201);
    const bad = await send("POST", "/api/v1/stacks", { name: "shop", compose: compose("ghost") });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { message: string }).message).toMatch(/^shop_app: secret not found: ghost/);
    expect(await names()).not.toContain("shop_other");

    expect((await send("POST", "/api/v1/secrets", { name: "db_pw", data: Buffer.from("p").toString("base64") })).status).toBe(201);
    const ok = await send("POST", "/api/v1/stacks", { name: "shop", compose: compose("db_pw") });
    expect(ok.status, await ok.clone().text()).toBe(200);
    const app = (await (await send("GET", "/api/v1/services/shop_app")).json()) as ServiceJson;
    expect(app.spec.secrets).toEqual([
      { source: "db_pw", target: "/run/secrets/db", uid: "0", gid: "0", mode: 0o444 },
      { source: "api_key", target: "/etc/key", uid: "0", gid: "0", mode: 0o400 },
    ]);
    expect(app.spec.configs).toEqual([{ source: "shop.conf", target: "/conf", uid: "0", gid: "0", mode: 0o444 }]);
    expect((await send("DELETE", "/api/v1/secrets/db_pw")).status).toBe(409);
  });
});
